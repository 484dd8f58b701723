"""The domain entry point: from a validated hook call with its FHIR data resolved, to the response.

Synchronous and free of HTTP, so it is tested directly: facts -> variant -> ratings (the engine),
then cards and system actions (``cards``). ``app.py`` resolves prefetch, calls ``advise``, records
what was issued, and sends the response.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cards.builder import CallContext, CardBuilder
from cds_service.engine.evaluate import Engine, default_engine
from cds_service.engine.fhir import Resource
from cds_service.knowledge.models import CategoryCode

from .feedback_store import IssuedCard
from .protocol import HookResponse, OrderSignContext
from .settings import Settings


@dataclass(frozen=True)
class HookCall:
    """Everything the decision needs, already validated and fetched."""

    service_id: str
    hook_instance: str
    context: OrderSignContext
    orders: list[dict[str, Any]]
    record: list[Resource]
    now: datetime


@dataclass
class Advice:
    """The response to send, the cards to remember for feedback, and a one-line decision summary."""

    response: HookResponse
    issued: list[IssuedCard] = field(default_factory=list)
    summary: str = ""
    ratings: list[CategoryCode] = field(default_factory=list)  # the ACR category of each rated order


def advise(call: HookCall, settings: Settings, engine: Engine | None = None) -> Advice:
    """The cards and system actions for ``call``."""
    engine = engine or default_engine()
    draft_orders = [entry.resource for entry in call.context.draftOrders.entry]
    evaluation = engine.evaluate(
        call.record,
        orders_to_rate=call.orders,
        draft_orders=draft_orders,
        today=call.now.date(),
        new_window=timedelta(weeks=settings.new_fracture_weeks),
    )
    built = CardBuilder(
        engine,
        CallContext(
            service_id=call.service_id,
            hook_instance=call.hook_instance,
            patient_reference=f"Patient/{call.context.patientId}",
            draft_orders=tuple(draft_orders),
            suggestion_mode=settings.suggestion_mode,
            code_system_base=settings.code_system_base,
            qcdsm_id=settings.qcdsm_id,
            now=call.now,
        ),
    ).build(evaluation)
    actions = built.system_actions or None
    response = HookResponse(
        cards=built.cards,
        systemActions=actions,
        # The public CDS Hooks sandbox reads ratings only from extension.systemActions (pre-2.0 place).
        extension={"systemActions": actions} if actions else None,
    )
    statuses = Counter(d.status.value for d in evaluation.decisions)
    summary = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "no-orders"
    ratings = [d.rating.category for d in evaluation.decisions if d.rating is not None]
    return Advice(response=response, issued=built.issued, summary=summary, ratings=ratings)
