"""A bare ASGI app for serving tests: answers with the process id of the worker that served the call;
``/busy`` first holds its worker for half a second (its event loop accepts nothing meanwhile)."""

from __future__ import annotations

import os
import time
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/busy":
        time.sleep(0.5)  # blocking on purpose: a worker busy with a long call
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
