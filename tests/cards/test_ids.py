"""Card and suggestion UUIDs: CDS Hooks 2.0 §Card "uuid: Unique identifier of the card"."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given
from hypothesis import strategies as st

from cards.ids import new_uuid, version_4


def test_uuids_are_version_4_and_canonical() -> None:
    for _ in range(300):  # past one pool
        value = new_uuid()
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_uuids_never_repeat_across_pools_and_threads() -> None:
    with ThreadPoolExecutor(8) as pool:
        drawn = [u for batch in pool.map(lambda _: [new_uuid() for _ in range(500)], range(8)) for u in batch]
    assert len(set(drawn)) == len(drawn) == 4000


@given(st.binary(min_size=16, max_size=16))
def test_the_string_is_the_standard_librarys_for_the_same_bytes(raw: bytes) -> None:
    assert version_4(raw) == str(uuid.UUID(bytes=raw, version=4))
