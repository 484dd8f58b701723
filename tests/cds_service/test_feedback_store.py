"""The feedback store on both backends: SQLite (embedded default) and a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.feedback_store import IssuedCard, SqlFeedbackStore, open_store
from cds_service.protocol import Feedback

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlFeedbackStore]:
    s = open_store(database_url)
    yield s
    s.close()


def card(uuid: str, *, variant: int | None = 2, kind: str = "lower-rated", at: datetime = T0) -> IssuedCard:
    return IssuedCard(
        uuid,
        "vcf-imaging-order-select",
        f"hook-{uuid}",
        kind,
        "warning",
        variant,
        "http://www.ama-assn.org/go/cpt|78306",
        (f"{uuid}-s1", f"{uuid}-s2"),
        at,
    )


def feedback(card_uuid: str, outcome: str = "overridden", at: datetime = T0, **kw: Any) -> Feedback:
    body: dict[str, Any] = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": at.isoformat()}
    if outcome == "accepted":
        body["acceptedSuggestions"] = [{"id": f"{card_uuid}-s1"}]
    else:
        body["overrideReason"] = {
            "reason": {"system": "urn:x", "code": "clinical-judgement", "display": "Judgement"},
            "userComment": "seen by radiology",
        }
    body.update(kw)
    return Feedback.model_validate(body)


def test_issued_cards_round_trip_and_are_not_duplicated(store: SqlFeedbackStore) -> None:
    store.record_issued([card("a"), card("b", variant=None, kind="ambiguous")])
    store.record_issued([card("a")])  # the same card again: kept once
    issued = store.issued()
    assert [c.card_uuid for c in issued] == ["a", "b"]
    assert issued[0] == card("a")
    assert issued[1].variant is None and issued[1].suggestion_uuids == ("b-s1", "b-s2")


def test_a_batch_larger_than_one_insert_statement_is_recorded_whole(store: SqlFeedbackStore) -> None:
    # The writer thread hands over hundreds of cards at once; they go in as multi-row INSERTs.
    batch = [card(f"c{i:04d}") for i in range(250)] + [card("c0001")]  # a duplicate across statements
    store.record_issued(batch)
    assert sorted(c.card_uuid for c in store.issued()) == [f"c{i:04d}" for i in range(250)]


def test_feedback_is_tied_to_its_card_and_unknown_cards_are_kept_but_flagged(store: SqlFeedbackStore) -> None:
    store.record_issued([card("a")])
    assert store.record_feedback("svc", [feedback("a", "accepted"), feedback("ghost")]) == 2
    known, unknown = store.feedback()
    assert (known.card_uuid, known.known_card, known.accepted_suggestions) == ("a", True, ("a-s1",))
    assert (unknown.card_uuid, unknown.known_card) == ("ghost", False)
    assert unknown.override_reason_code == "clinical-judgement" and unknown.user_comment == "seen by radiology"


def test_repeated_feedback_for_one_card_is_all_kept(store: SqlFeedbackStore) -> None:
    """The spec allows the same card to be reported several times; nothing is dropped."""
    store.record_issued([card("a")])
    store.record_feedback("svc", [feedback("a", "overridden")])
    store.record_feedback("svc", [feedback("a", "accepted", at=T0 + timedelta(minutes=1))])
    assert [f.outcome for f in store.feedback()] == ["overridden", "accepted"]


def test_since_filters_by_time(store: SqlFeedbackStore) -> None:
    store.record_issued([card("old", at=T0 - timedelta(days=30)), card("new")])
    store.record_feedback("svc", [feedback("old", at=T0 - timedelta(days=29)), feedback("new")])
    since = T0 - timedelta(days=1)
    assert [c.card_uuid for c in store.issued(since)] == ["new"]
    assert [f.card_uuid for f in store.feedback(since)] == ["new"]


def test_jwt_ids_are_remembered_once(store: SqlFeedbackStore) -> None:
    expires = datetime.now(UTC).timestamp() + 300
    assert store.first_use("iss", "jti-1", expires) is True
    assert store.first_use("iss", "jti-1", expires) is False
    assert store.first_use("other-iss", "jti-1", expires) is True


def test_data_survives_reopening(database_url: str) -> None:
    first = open_store(database_url)
    first.record_issued([card("a")])
    first.record_feedback("svc", [feedback("a")])
    first.close()
    again = open_store(database_url)
    assert [c.card_uuid for c in again.issued()] == ["a"] and len(again.feedback()) == 1
    again.close()


def test_concurrent_writers_lose_nothing(store: SqlFeedbackStore) -> None:
    def write(n: int) -> None:
        for i in range(25):
            store.record_issued([card(f"{n}-{i}")])
            store.record_feedback("svc", [feedback(f"{n}-{i}")])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.issued()) == 100 and len(store.feedback()) == 100


def open_together(url: str, count: int = 6) -> list[SqlFeedbackStore]:
    """``count`` stores opened on ``url`` at the same moment, from as many threads; raises the first
    error any of them met."""
    opened: list[SqlFeedbackStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_store(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in opened:
        s.close()
    if errors:
        raise errors[0]
    return opened


def test_stores_opened_together_on_a_new_database_all_open(database_url: str) -> None:
    """Workers start together, and each prepares the database. Without care some of these failed: on
    PostgreSQL, CREATE TABLE IF NOT EXISTS racing another (a unique violation, nearly every time); on
    SQLite, switching a new file to WAL while another connection held it ("database is locked", not
    waited on: a few percent of new files, hence twenty of them)."""
    fresh = [database_url]
    if database_url.startswith("sqlite"):
        fresh = [database_url.replace("store.sqlite3", f"store-{n}.sqlite3") for n in range(20)]
    for url in fresh:
        assert len(open_together(url)) == 6
    first, last = open_store(fresh[-1]), open_store(fresh[-1])
    first.record_issued([card("a")])
    assert [c.card_uuid for c in last.issued()] == ["a"]
    first.close()
    last.close()


def test_unsupported_database_url() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        open_store("mysql://x")
