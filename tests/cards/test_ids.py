"""Card and suggestion UUIDs: CDS Hooks 2.0 §Card "uuid: Unique identifier of the card"."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given
from hypothesis import strategies as st

from cards.ids import new_card_uuid, new_uuid, version_4, version_7


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


@given(st.integers(0, 2**48 - 1), st.binary(min_size=16, max_size=16))
def test_version_7_holds_the_time_then_the_random_bits(unix_ms: int, raw: bytes) -> None:
    parsed = uuid.UUID(version_7(unix_ms, raw))
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == unix_ms  # RFC 9562 §5.7: unix_ts_ms, the first 48 bits
    random_bits = int.from_bytes(raw[6:], "big") & ~(0xF << 76) & ~(0x3 << 62)  # less version and variant
    assert parsed.int & ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62) == random_bits
    assert str(parsed) == version_7(unix_ms, raw)


def test_card_uuids_are_version_7_ordered_by_time_and_distinct() -> None:
    """Time-ordered card UUIDs keep the issued-card store's index appended to, not scattered."""
    before = time.time_ns() // 1_000_000
    first = [new_card_uuid() for _ in range(300)]
    time.sleep(0.002)
    later = new_card_uuid()
    after = time.time_ns() // 1_000_000
    for value in [*first, later]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value
        assert before <= parsed.int >> 80 <= after
    assert len(set(first)) == len(first)
    assert max(first) < later  # the canonical strings sort by time across milliseconds
