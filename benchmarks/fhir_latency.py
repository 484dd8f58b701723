"""A local FHIR server over the benchmark record that answers after ``BENCH_FHIR_DELAY_MS``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from benchmarks.records import record
from cds_service.fhir_server import create_fhir_app

DELAY = float(os.environ.get("BENCH_FHIR_DELAY_MS", "0")) / 1000
_inner = create_fhir_app(record(100))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and DELAY and scope.get("path") != "/metadata":
        await asyncio.sleep(DELAY)
    await _inner(scope, receive, send)
