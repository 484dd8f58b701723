"""Issued cards are written behind the response, on both store backends, and never dropped silently."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cds_service.feedback_store import SqlFeedbackStore, SqliteFeedbackStore, open_store
from cds_service.issued_writer import IssuedWriter
from cds_service.metrics import ISSUED_WRITE_FAILURES
from tests.cds_service.test_feedback_store import card


@pytest.fixture
def store(database_url: str) -> Iterator[SqlFeedbackStore]:
    s = open_store(database_url)
    yield s
    s.close()


def test_everything_submitted_is_recorded_once_after_flush(store: SqlFeedbackStore) -> None:
    writer = IssuedWriter(store, gather=0.001, max_batch=7)  # several transactions
    for n in range(50):
        writer.submit([card(f"c{n}-a"), card(f"c{n}-b")])
    writer.submit([])
    writer.flush()
    assert sorted(c.card_uuid for c in store.issued()) == sorted(f"c{n}-{x}" for n in range(50) for x in "ab")
    writer.close()


def test_close_records_what_is_still_queued(store: SqlFeedbackStore) -> None:
    writer = IssuedWriter(store)
    writer.submit([card(f"q{n}") for n in range(300)])
    writer.close()
    assert len(store.issued()) == 300


def test_a_failed_write_is_retried_then_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    broken = SqliteFeedbackStore(":memory:")
    broken.close()  # every write now fails for real: "Cannot operate on a closed database"
    before = ISSUED_WRITE_FAILURES._value.get()
    writer = IssuedWriter(broken, retry_after=0.01)
    with caplog.at_level(logging.ERROR, logger="cds_service"):
        writer.submit([card("lost-1"), card("lost-2")])
        writer.flush()
    writer.close()
    assert ISSUED_WRITE_FAILURES._value.get() - before == 2
    assert "issued cards not recorded: count=2 error=ProgrammingError" in caplog.text
