"""Random (version 4) UUIDs for cards, suggestions and new resources, from a pool of OS randomness.

``uuid.uuid4()`` asks the OS for 16 bytes each time, releasing the GIL around the system call; while
the issued-card writer thread waits for the GIL, each release handed it over and the event loop
waited to get it back (~35 µs per call for the four UUIDs a call needs). One draw of 4 KiB serves
256 UUIDs, with the same randomness. The string is formatted from the bytes directly: building a
``uuid.UUID`` to print it cost ~9,000 instructions each (its checks and ``__str__`` are Python).
"""

from __future__ import annotations

import os
import threading

_POOL_BYTES = 16 * 256
_lock = threading.Lock()
_pool = b""
_used = _POOL_BYTES


def new_uuid() -> str:
    """A random UUID (RFC 9562 version 4), as its canonical string."""
    global _pool, _used
    with _lock:
        if _used == _POOL_BYTES:
            _pool, _used = os.urandom(_POOL_BYTES), 0
        raw = _pool[_used : _used + 16]
        _used += 16
    return version_4(raw)


def version_4(raw: bytes) -> str:
    """The canonical string of the version 4 UUID made of 16 random bytes (``str(uuid.UUID(bytes=raw,
    version=4))``): the version and variant bits set, the rest as drawn."""
    digits = (raw[:6] + bytes((raw[6] & 0x0F | 0x40, raw[7], raw[8] & 0x3F | 0x80)) + raw[9:]).hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
