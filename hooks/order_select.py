"""``order-select``: advice while an order is being chosen; only the selected orders are rated."""

from __future__ import annotations

from typing import Any

from cds_service.protocol import OrderSelectContext
from cds_service.services import CdsService


def selected_orders(context: OrderSelectContext) -> list[dict[str, Any]]:
    """The draft orders named in ``selections``, in selection order; the rest are context only."""
    by_ref = {f"{e.resource['resourceType']}/{e.resource.get('id')}": e.resource for e in context.draftOrders.entry}
    return [by_ref[ref] for ref in dict.fromkeys(context.selections)]


SERVICE = CdsService(
    id="vcf-imaging-order-select",
    hook="order-select",
    title="ACR appropriateness for vertebral compression fracture orders",
    description=(
        "Rates each selected imaging or treatment order for a vertebral compression fracture against the "
        "ACR Appropriateness Criteria 'Management of Vertebral Compression Fractures' (Revised 2022), "
        "returns the rating as Argonaut PAMA system actions, and suggests a better-rated option."
    ),
    context_model=OrderSelectContext,
    orders_to_rate=selected_orders,
)
