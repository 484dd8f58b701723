"""The domain entry point: from a validated hook call with its FHIR data resolved, to the response.

Synchronous and free of HTTP, so it is tested directly. ``app.py`` resolves prefetch, calls
``advise``, records what was issued, and sends the response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    record: list[dict[str, Any]]
    now: datetime


@dataclass
class Advice:
    """The response to send, and the cards to remember for feedback."""

    response: HookResponse
    issued: list[IssuedCard] = field(default_factory=list)
    summary: str = "no-orders-rated"


def advise(call: HookCall, settings: Settings) -> Advice:
    """The cards and system actions for ``call``."""
    return Advice(response=HookResponse(cards=[]))
