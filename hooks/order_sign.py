"""``order-sign``: the last check before signing; every draft order is rated."""

from __future__ import annotations

from typing import Any

from cds_service.protocol import OrderSignContext
from cds_service.services import CdsService


def all_orders(context: OrderSignContext) -> list[dict[str, Any]]:
    """Every resource in ``draftOrders``."""
    return [entry.resource for entry in context.draftOrders.entry]


SERVICE = CdsService(
    id="vcf-imaging-order-sign",
    hook="order-sign",
    title="ACR appropriateness check at signing for vertebral compression fracture orders",
    description=(
        "Before signing, rates every imaging or treatment order for a vertebral compression fracture against "
        "the ACR Appropriateness Criteria 'Management of Vertebral Compression Fractures' (Revised 2022), "
        "returns the ratings as Argonaut PAMA system actions, and suggests better-rated options."
    ),
    context_model=OrderSignContext,
    orders_to_rate=all_orders,
)
