"""The bare baseline the service is measured against: FastAPI, the same route, the body parsed as JSON,
and ``{"cards": []}`` back. Anything the service costs beyond this is the price of its decisions."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/cds-services/{service_id}")
async def call(service_id: str, request: Request) -> dict[str, Any]:
    json.loads(await request.body())
    return {"cards": []}
