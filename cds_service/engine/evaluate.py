"""The engine's front door: a patient record and orders in, facts and one decision per order out."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec

from ..knowledge import Knowledge, load_knowledge
from .facts import FactExtractor, PatientFacts
from .fhir import Resource
from .rating import OrderDecision, Rater
from .terminology import Terminology
from .text import TextFinder

_RECORD_ENCODER = msgspec.msgpack.Encoder()  # the record: structs of str, float and None only
_JSON_ENCODER = msgspec.json.Encoder()  # reasons are any JSON (an integer past 64 bits included)


@dataclass(frozen=True)
class Evaluation:
    facts: PatientFacts
    decisions: tuple[OrderDecision, ...]


class CallKey(NamedTuple):
    """What facts depend on, as the facts cache compares it."""

    identity: tuple[Any, ...]  # finds the entry: the record's resource ids (hashed), the reasons, the day, the window
    record: bytes  # confirms it: the record as read (the thin structs), packed


class FactsCache:
    """Recently extracted facts, found again by comparing everything they depend on.

    order-select fires again at each change of an order (study picked, reason added) with the same
    record, so most calls of an ordering session ask for facts already extracted. Facts depend on the
    record as the engine reads it (the thin structs: elements no rule reads do not split entries), the
    draft orders' reasons, the day and the "new" window. An entry is found by the record's resource ids
    (hashed) and the rest exactly (reasons compared as JSON text, where Python would take ``1``, ``1.0`` and
    ``true`` as equal), then confirmed by comparing the record packed as MessagePack byte for byte.

    Why bytes and not a digest of them: SHA-256 of the ~21 KiB a 100-resource record packs into cost
    ~20 µs of every call (it was the key), a comparison ~1 µs. Why not the structs themselves: an entry
    holding a record's ~2,000 objects, freed long after (out of the CPU's caches), cost ~80 µs per call
    more than it saved. Packed records take memory, so the cache is bounded by the bytes it holds,
    ``max_bytes`` (8 MiB: ~390 records of 100 resources), least recently used out first; entries live
    ``ttl`` seconds.
    """

    def __init__(self, max_bytes: int = 8 << 20, ttl: float = 120.0) -> None:
        # identity -> (stored at, packed record, facts)
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, bytes, PatientFacts]] = OrderedDict()
        self._max = max_bytes
        self._held = 0
        self._ttl = ttl
        self._lock = threading.Lock()

    @staticmethod
    def key(record: Sequence[Resource], reasons: Sequence[Any], today: date, window: timedelta) -> CallKey:
        """Everything the facts for ``record``, the orders' ``reasons``, ``today`` and ``window`` depend on."""
        # The ids' hash, not the ids: an entry then holds no strings of the record (each one to free,
        # out of the CPU's caches, at eviction); two records whose ids' hashes agree share an identity, and
        # the bytes tell them apart.
        ids = hash(tuple([resource.id for resource in record]))
        return CallKey((ids, _JSON_ENCODER.encode(reasons), today, window), _RECORD_ENCODER.encode(record))

    def get(self, key: CallKey) -> PatientFacts | None:
        with self._lock:
            entry = self._entries.get(key.identity)
            if entry is None or time.monotonic() - entry[0] > self._ttl or entry[1] != key.record:
                return None
            self._entries.move_to_end(key.identity)
            return entry[2]

    def put(self, key: CallKey, facts: PatientFacts) -> None:
        with self._lock:
            old = self._entries.pop(key.identity, None)
            if old is not None:
                self._held -= len(old[1])
            self._entries[key.identity] = (time.monotonic(), key.record, facts)
            self._held += len(key.record)
            while self._held > self._max:  # a record over the whole budget is not kept at all
                self._held -= len(self._entries.popitem(last=False)[1][1])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0


class Engine:
    """Compiled knowledge (code indexes, text patterns) ready to evaluate many calls."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.terminology = Terminology(knowledge)
        self.text = TextFinder(knowledge.value_sets.text)
        self.extractor = FactExtractor(
            self.terminology, self.text, egfr_below=knowledge.value_sets.thresholds.egfr_gadolinium_risk_below
        )
        self.rater = Rater(knowledge, self.terminology)
        self.facts_cache = FactsCache()

    def evaluate(
        self,
        record: Sequence[Resource],
        *,
        orders_to_rate: Sequence[dict[str, Any]],
        draft_orders: Sequence[dict[str, Any]],
        today: date,
        new_window: timedelta,
    ) -> Evaluation:
        """Facts from the record and every draft order's reasons; a decision for each order to rate."""
        # Reasons only (with the orders' ids, which evidence cites): the codes ordered do not change facts.
        reasons = [(o.get("id"), o.get("reasonCode")) for o in draft_orders]
        key = FactsCache.key(record, reasons, today, new_window)
        facts = self.facts_cache.get(key)
        if facts is None:
            facts = self.extractor.extract(record, draft_orders, today=today, new_window=new_window)
            self.facts_cache.put(key, facts)
        return Evaluation(facts, tuple(self.rater.decide(order, facts) for order in orders_to_rate))


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    """The process-wide engine over the packaged knowledge."""
    return Engine(load_knowledge())
