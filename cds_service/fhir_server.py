"""A read-only FHIR R4 server over fixture scenarios, for fetch mode, the sandbox and integration tests.

Answers ``GET /metadata``, reads (``GET /{type}/{id}``), searches (``GET /{type}?...`` and the
sandbox's ``POST /{type}/_search``), with CORS for browsers and an optional bearer-token check.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .cors import add_cors
from .fhir_store import SUPPORTED_PARAMS, FhirStore, UnsupportedQuery, searchset

FHIR_JSON = "application/fhir+json"


def _outcome(status: int, code: str, message: str) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def capability_statement(types: Iterable[str]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-21",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": {"name": "vcf-cds fixture FHIR server"},
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": kind,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": p, "type": "token"} for p in sorted(SUPPORTED_PARAMS)],
                    }
                    for kind in sorted(types)
                ],
            }
        ],
    }


def create_fhir_app(resources: Iterable[dict[str, Any]], *, token: str | None = None) -> FastAPI:
    """The FHIR server app over ``resources``; with ``token`` every request needs that bearer token."""
    store = FhirStore(resources)
    app = FastAPI(title="Fixture FHIR server", docs_url=None, redoc_url=None, openapi_url=None)
    add_cors(app, ["*"])

    @app.middleware("http")
    async def bearer(request: Request, call_next: Any) -> Any:
        if token and request.method != "OPTIONS" and request.url.path != "/metadata":
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _outcome(401, "login", "A valid bearer token is required")
        return await call_next(request)

    @app.get("/metadata")
    async def metadata() -> JSONResponse:
        return JSONResponse(capability_statement(store.types()), media_type=FHIR_JSON)

    @app.get("/{kind}")
    async def search(kind: str, request: Request) -> JSONResponse:
        return _search(kind, dict(request.query_params), str(request.url))

    @app.post("/{kind}/_search")
    async def post_search(kind: str, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        return _search(kind, {**form, **dict(request.query_params)}, str(request.url))

    @app.get("/{kind}/{ident}")
    async def read(kind: str, ident: str) -> JSONResponse:
        resource = store.read(kind, ident)
        if resource is None:
            return _outcome(404, "not-found", f"{kind}/{ident} is not on this server")
        return JSONResponse(resource, media_type=FHIR_JSON)

    def _search(kind: str, params: dict[str, str], url: str) -> JSONResponse:
        if not kind[:1].isupper():
            return _outcome(404, "not-found", f"No resource type {kind!r}")
        try:
            found = store.search(kind, params)
        except UnsupportedQuery as exc:
            return _outcome(400, "not-supported", str(exc))
        return JSONResponse(searchset(found, self_url=url), media_type=FHIR_JSON)

    return app
