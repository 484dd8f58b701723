"""Random (version 4) UUIDs for cards, suggestions and new resources, from a pool of OS randomness.

``uuid.uuid4()`` asks the OS for 16 bytes each time, releasing the GIL around the system call; while
the issued-card writer thread waits for the GIL, each release handed it over and the event loop
waited to get it back (~35 µs per call for the four UUIDs a call needs). One draw of 4 KiB serves
256 UUIDs, with the same randomness.
"""

from __future__ import annotations

import os
import threading
import uuid

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
    return str(uuid.UUID(bytes=raw, version=4))
