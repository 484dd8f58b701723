"""Card and suggestion UUIDs: CDS Hooks 2.0 §Card "uuid: Unique identifier of the card"."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from cards.ids import new_uuid


def test_uuids_are_version_4_and_canonical() -> None:
    for _ in range(300):  # past one pool
        value = new_uuid()
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_uuids_never_repeat_across_pools_and_threads() -> None:
    with ThreadPoolExecutor(8) as pool:
        drawn = [u for batch in pool.map(lambda _: [new_uuid() for _ in range(500)], range(8)) for u in batch]
    assert len(set(drawn)) == len(drawn) == 4000
