"""Bounded memos: memory stays bounded whatever a stream of records holds."""

from __future__ import annotations

from cds_service.engine.memo import remember


def test_a_memo_keeps_its_answers_and_empties_once_past_its_bound() -> None:
    memo: dict[str, int] = {}
    assert [remember(memo, k, v, max_entries=3) for k, v in [("a", 1), ("b", 2), ("c", 3), ("d", 4)]] == [1, 2, 3, 4]
    assert memo == {"a": 1, "b": 2, "c": 3, "d": 4}
    remember(memo, "e", 5, max_entries=3)  # past the bound: emptied, then the new answer kept
    assert memo == {"e": 5}
