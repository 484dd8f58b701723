"""The engine's front door, and the facts cache that serves repeated order-select calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cds_service.engine.evaluate import CallKey, Engine, FactsCache
from cds_service.knowledge import load_knowledge
from tests import records as r
from tests.factories import SNOMED, condition, read, service_request

WEEKS = timedelta(weeks=12)


def evaluate(engine: Engine, record: list[dict[str, Any]], order: dict[str, Any], **kw: Any) -> Any:
    return engine.evaluate(
        read(record),
        orders_to_rate=[order],
        draft_orders=[order],
        today=kw.get("today", r.TODAY),
        new_window=kw.get("window", WEEKS),
    )


def test_repeated_calls_for_the_same_record_reuse_the_facts() -> None:
    engine = Engine(load_knowledge())
    record = r.record_for_variant(2)
    first = evaluate(engine, record, service_request(codings=[{"system": "x", "code": "1"}]))
    # order-select fires again when the study changes: same record, other code.
    second = evaluate(
        engine, record, service_request(codings=[{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}])
    )
    assert second.facts is first.facts
    assert second.decisions[0].rating is not None


def test_anything_the_facts_depend_on_gives_fresh_facts() -> None:
    engine = Engine(load_knowledge())
    record = r.record_for_variant(1)
    order = service_request()
    base = evaluate(engine, record, order).facts
    assert evaluate(engine, [*record, r.cancer("icd")], order).facts.malignancy.value is True
    with_reason = service_request(reasons=[{"system": SNOMED, "code": "94222008"}])
    assert evaluate(engine, record, with_reason).facts.malignancy.value is True
    later = evaluate(engine, record, order, today=r.TODAY + timedelta(days=200)).facts
    assert later is not base and later.new_fracture.value is False
    narrower = evaluate(engine, record, order, window=timedelta(days=1)).facts
    assert narrower is not base and narrower.new_fracture.value is False
    assert evaluate(engine, record, order).facts is base


def call_key(name: str, size: int) -> CallKey:
    return CallKey((name,), b"x" * size)


def test_cache_expires_and_is_bounded_by_the_bytes_it_holds(monkeypatch: Any) -> None:
    cache = FactsCache(max_bytes=100, ttl=60)
    facts = Engine(load_knowledge()).extractor.extract([], [], today=r.TODAY, new_window=WEEKS)
    clock = [1000.0]
    monkeypatch.setattr("cds_service.engine.evaluate.time.monotonic", lambda: clock[0])
    cache.put(call_key("a", 40), facts)
    cache.put(call_key("b", 40), facts)
    assert cache.get(call_key("a", 40)) is facts
    cache.put(call_key("c", 40), facts)  # 120 bytes: evicts the least recently used, b
    assert cache.get(call_key("b", 40)) is None and cache.get(call_key("a", 40)) is facts
    cache.put(call_key("big", 101), facts)  # over the whole budget: not kept, and nothing else is
    assert cache.get(call_key("big", 101)) is None and cache.get(call_key("a", 40)) is None
    cache.put(call_key("a", 40), facts)
    clock[0] += 61
    assert cache.get(call_key("a", 40)) is None


def test_an_entry_is_found_by_identity_and_served_only_for_the_same_record() -> None:
    """The resource ids find an entry; the record packed must be the same, byte for byte."""
    engine = Engine(load_knowledge())
    order = service_request()
    fracture = condition("c1", "M48.56XA", onset="2026-11-01")
    first = evaluate(engine, [fracture, r.back_pain("icd")], order).facts
    assert first.vcf_current.value is True
    cancer = condition("c1", "C79.51", onset="2026-11-01")  # same id, now a metastasis
    second = evaluate(engine, [cancer, r.back_pain("icd")], order).facts
    assert second is not first and second.vcf_current.value is False and second.malignancy.value is True
    older = condition("c1", "M48.56XA", onset="2025-01-01")  # only a date differs
    assert evaluate(engine, [older, r.back_pain("icd")], order).facts.new_fracture.value is False
    assert evaluate(engine, [fracture, r.back_pain("icd")], order).facts.new_fracture.value is True


def test_the_cache_key_packs_the_record_as_read_so_unread_elements_do_not_split_it() -> None:
    engine = Engine(load_knowledge())
    plain = condition("c", "M48.56XA")
    padded = condition("c", "M48.56XA", extra_number=2**70, meta={"versionId": "7"})
    key = FactsCache.key(read([plain]), [], r.TODAY, WEEKS)
    assert key is not None and key == FactsCache.key(read([padded]), [], r.TODAY, WEEKS)
    assert key != FactsCache.key(read([condition("c", "M48.56XA", note=[{"text": "L1"}])]), [], r.TODAY, WEEKS)
    assert evaluate(engine, [padded, r.back_pain("icd")], service_request()).facts.vcf_current.value is True


def test_the_cache_key_takes_any_json_in_order_reasons_and_tells_reasons_apart() -> None:
    record = read([condition("c", "M48.56XA")])
    odd = [("o", [{"coding": [{"code": "x"}], "extension": [{"valueInteger": 2**70}]}])]
    key = FactsCache.key(record, odd, r.TODAY, WEEKS)
    assert key != FactsCache.key(record, [("o", [{"coding": [{"code": "x"}]}])], r.TODAY, WEEKS)
    assert key != FactsCache.key(record, odd, r.TODAY, WEEKS * 2)
    assert key != FactsCache.key(record, odd, r.TODAY + timedelta(days=1), WEEKS)
    # 1, 1.0 and true are equal to Python, not as JSON
    ones = {FactsCache.key(record, [("o", [{"text": one}])], r.TODAY, WEEKS) for one in (1, 1.0, True)}
    assert len(ones) == 3
