"""Bounded memos: answers already worked out, kept so a stream of records asks each question once."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, max_entries: int) -> V:
    """Keep ``value`` as ``memo``'s answer for ``key``, and return it; a memo past ``max_entries`` is
    emptied first, so memory stays bounded whatever the records hold.

    Memos stay plain dicts (not a dict subclass with this as a method): hot loops call their ``get``
    for every Coding and text of a record, and on a subclass each call cost ~250 instructions more.
    """
    if len(memo) > max_entries:
        memo.clear()
    memo[key] = value
    return value
