"""The ASGI app: routes translate HTTP into calls on the domain, and errors into OperationOutcomes.

Import ``cds_service.app:app`` for uvicorn or gunicorn; ``create_app`` builds one with explicit
settings (tests, the CLI). Logs name the hookInstance, the service, the decision and the timing;
never a request body, a token or a patient identifier.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hooks import SERVICES

from .advice import HookCall, advise
from .cors import add_cors
from .errors import BadRequest, CdsError, HookMismatch, UnknownService
from .feedback_store import FeedbackStore, SqliteFeedbackStore
from .fhir_client import FhirFetcher
from .limits import BodySizeLimit
from .prefetch import resolve_prefetch
from .protocol import FeedbackRequest, HookRequest
from .services import CdsService, validation_summary
from .settings import Settings, get_settings

log = logging.getLogger("cds_service")

_M = TypeVar("_M", HookRequest, FeedbackRequest)


@dataclass
class Runtime:
    """Per-process resources created at start-up and closed at shutdown."""

    settings: Settings
    store: FeedbackStore
    fetcher: FhirFetcher


def create_app(settings: Settings | None = None, *, store: FeedbackStore | None = None) -> FastAPI:
    """A configured app. ``store`` replaces the SQLite store built from settings (tests)."""
    settings = settings or get_settings()
    services = {service.id: service for service in SERVICES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            timeout=settings.fhir_timeout_seconds,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
        )
        own_store = store or SqliteFeedbackStore(settings.feedback_db_path)
        app.state.runtime = Runtime(
            settings=settings,
            store=own_store,
            fetcher=FhirFetcher(
                client, max_pages=settings.fhir_max_pages, max_response_bytes=settings.fhir_max_response_bytes
            ),
        )
        try:
            yield
        finally:
            await client.aclose()
            if store is None:
                own_store.close()

    app = FastAPI(
        title="VCF appropriateness CDS Hooks service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # Middleware added last runs first: CORS wraps the body limit so a browser sees its 413 too.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_cors(app, settings.cors_origins)
    _install_error_handlers(app)

    def runtime(request: Request) -> Runtime:
        rt: Runtime = request.app.state.runtime
        return rt

    def service_for(service_id: str) -> CdsService:
        try:
            return services[service_id]
        except KeyError:
            raise UnknownService(f"No CDS service with id {service_id!r}") from None

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return {"services": [s.definition().model_dump(exclude_none=True) for s in services.values()]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> JSONResponse:
        started = time.perf_counter()
        service = service_for(service_id)
        rt = runtime(request)
        hook_request = _parse(HookRequest, await _json_body(request))
        if hook_request.hook != service.hook:
            raise HookMismatch(
                f"Service {service.id!r} answers the {service.hook!r} hook, not {hook_request.hook!r}",
                expression=["hook"],
            )
        context = service.parse_context(hook_request.context)
        data = await resolve_prefetch(
            list(service.prefetch),
            hook_request,
            rt.fetcher,
            fetch_without_token=rt.settings.fhir_fetch_without_token,
            timeout=rt.settings.fhir_timeout_seconds,
            budget=rt.settings.fhir_budget_seconds,
        )
        call = HookCall(
            service_id=service.id,
            hook_instance=hook_request.hookInstance,
            context=context,
            orders=service.orders_to_rate(context),
            record=data.all_resources(),
            now=rt.settings.now(),
        )
        advice = advise(call, rt.settings)
        await run_in_threadpool(rt.store.record_issued, advice.issued)
        log.info(
            "hook service=%s hookInstance=%s decision=%s cards=%d elapsed_ms=%.1f",
            service.id,
            hook_request.hookInstance,
            advice.summary,
            len(advice.response.cards),
            (time.perf_counter() - started) * 1000,
        )
        return JSONResponse(advice.response.dump())

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        service = service_for(service_id)
        body = _parse(FeedbackRequest, await _json_body(request))
        stored = await run_in_threadpool(runtime(request).store.record_feedback, service.id, body.feedback)
        log.info("feedback service=%s entries=%d", service.id, stored)
        return JSONResponse({"stored": stored})

    return app


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise BadRequest("The request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON") from None


def _parse(model: type[_M], body: Any) -> _M:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(
            "Invalid request: " + validation_summary(exc),
            expression=[".".join(str(p) for p in err["loc"]) for err in exc.errors()],
        ) from None


def _install_error_handlers(app: FastAPI) -> None:
    def outcome(error: CdsError) -> JSONResponse:
        return JSONResponse(error.to_operation_outcome(), status_code=error.status_code)

    @app.exception_handler(CdsError)
    async def cds_error(request: Request, exc: CdsError) -> JSONResponse:
        log.info("refused path=%s status=%d reason=%s", request.url.path, exc.status_code, type(exc).__name__)
        return outcome(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return outcome(BadRequest("Invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return outcome(UnknownService(f"No route {request.url.path!r}"))
        error = BadRequest(str(exc.detail))
        response = JSONResponse(error.to_operation_outcome(), status_code=exc.status_code)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: log the type for the operator, tell the client nothing internal.
        # Only the type and where it was raised: messages can carry request data.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        log.error("internal error path=%s type=%s at=%s", request.url.path, type(exc).__name__, where)
        return JSONResponse(
            CdsError("Internal error; the service could not evaluate this request").to_operation_outcome(),
            status_code=500,
        )


app = create_app()
