"""The engine's front door, and the facts cache that serves repeated order-select calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cds_service.engine.evaluate import Engine, FactsCache
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


def test_cache_expires_and_is_bounded(monkeypatch: Any) -> None:
    cache = FactsCache(max_entries=2, ttl=60)
    facts = Engine(load_knowledge()).extractor.extract([], [], today=r.TODAY, new_window=WEEKS)
    clock = [1000.0]
    monkeypatch.setattr("cds_service.engine.evaluate.time.monotonic", lambda: clock[0])
    cache.put(b"a", facts)
    cache.put(b"b", facts)
    assert cache.get(b"a") is facts
    cache.put(b"c", facts)  # evicts the least recently used: b
    assert cache.get(b"b") is None and cache.get(b"a") is facts
    clock[0] += 61
    assert cache.get(b"a") is None


def test_the_cache_key_digests_the_record_as_read_so_unread_elements_do_not_split_it() -> None:
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
