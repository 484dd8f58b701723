"""UUIDs for cards (time-ordered, version 7), suggestions and new resources (random, version 4), from a
pool of OS randomness.

``uuid.uuid4()`` asks the OS for 16 bytes each time, releasing the GIL around the system call; while
the issued-card writer thread waits for the GIL, each release handed it over and the event loop
waited to get it back (~35 µs per call for the four UUIDs a call needs). One draw of 4 KiB serves
256 UUIDs, with the same randomness. The string is formatted from the bytes directly: building a
``uuid.UUID`` to print it cost ~9,000 instructions each (its checks and ``__str__`` are Python).

Card UUIDs are the feedback store's key. Random ones put each new card on a random page of its
index, so every commit of the issued-card writer rewrote a page per card (~15 µs of CPU per card
in SQLite's WAL at 40,000 cards, against ~3 µs when new keys fall on the last page); a version 7
UUID starts with the time in milliseconds, so new cards land together, and its 74 random bits
leave it as hard to guess. The time it carries is when the card was issued, which its caller knows.
"""

from __future__ import annotations

import os
import threading
import time

_POOL_BYTES = 16 * 256
_lock = threading.Lock()
_pool = b""
_used = _POOL_BYTES


def new_uuid() -> str:
    """A random UUID (RFC 9562 version 4), as its canonical string."""
    return version_4(_draw())


def new_card_uuid() -> str:
    """A time-ordered UUID (RFC 9562 version 7: Unix time in milliseconds, then random bits)."""
    return version_7(time.time_ns() // 1_000_000, _draw())


def version_4(raw: bytes) -> str:
    """The canonical string of the version 4 UUID made of 16 random bytes (``str(uuid.UUID(bytes=raw,
    version=4))``): the version and variant bits set, the rest as drawn."""
    return _canonical(raw[:6], 0x40, raw)


def version_7(unix_ms: int, raw: bytes) -> str:
    """The canonical string of the version 7 UUID for ``unix_ms`` (48 bits, big-endian) and the random
    ``raw`` (16 bytes, of which the last 10 are used): the version and variant bits set."""
    return _canonical((unix_ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big"), 0x70, raw)


def _draw() -> bytes:
    global _pool, _used
    with _lock:
        if _used == _POOL_BYTES:
            _pool, _used = os.urandom(_POOL_BYTES), 0
        raw = _pool[_used : _used + 16]
        _used += 16
    return raw


def _canonical(head: bytes, version: int, raw: bytes) -> str:
    digits = (head + bytes((raw[6] & 0x0F | version, raw[7], raw[8] & 0x3F | 0x80)) + raw[9:]).hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
