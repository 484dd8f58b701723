"""The engine's front door: a patient record and orders in, facts and one decision per order out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from ..knowledge import Knowledge, load_knowledge
from .facts import FactExtractor, PatientFacts
from .rating import OrderDecision, Rater
from .terminology import Terminology
from .text import TextFinder


@dataclass(frozen=True)
class Evaluation:
    facts: PatientFacts
    decisions: tuple[OrderDecision, ...]


class Engine:
    """Compiled knowledge (code indexes, text patterns) ready to evaluate many calls."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.terminology = Terminology(knowledge)
        self.text = TextFinder(knowledge.value_sets.text)
        self.extractor = FactExtractor(self.terminology, self.text)
        self.rater = Rater(knowledge, self.terminology)

    def evaluate(
        self,
        record: Sequence[dict[str, Any]],
        *,
        orders_to_rate: Sequence[dict[str, Any]],
        draft_orders: Sequence[dict[str, Any]],
        today: date,
        new_window: timedelta,
    ) -> Evaluation:
        """Facts from the record and every draft order's reasons; a decision for each order to rate."""
        facts = self.extractor.extract(record, draft_orders, today=today, new_window=new_window)
        return Evaluation(facts, tuple(self.rater.decide(order, facts) for order in orders_to_rate))


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    """The process-wide engine over the packaged knowledge."""
    return Engine(load_knowledge())
