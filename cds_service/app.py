"""The ASGI app: routes translate HTTP into calls on the domain, and errors into OperationOutcomes.

Import ``cds_service.app:app`` for uvicorn or gunicorn; ``create_app`` builds one with explicit
settings (tests, the CLI). Logs name the hookInstance, the service, the decision and the timing;
never a request body, a token or a patient identifier.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from hooks import SERVICES

from . import metrics as metrics_module
from .advice import HookCall, advise
from .cors import add_cors
from .engine.fhir import read_document
from .errors import BadRequest, CdsError, HookMismatch, UnknownService
from .feedback_store import FeedbackStore, open_store
from .fhir_client import FhirFetcher
from .issued_writer import IssuedWriter
from .limits import BodySizeLimit, check_counts, check_shape, parse_hook_body, parse_json
from .metrics import exposition, labelled
from .prefetch import resolve_prefetch
from .protocol import FeedbackRequest, HookRequest, HookResponse
from .security import ClientAuthenticator, ClientAuthMiddleware, JwksCache, ReplayCache
from .services import CdsService, validation_summary
from .settings import Settings, get_settings

log = logging.getLogger("cds_service")

_M = TypeVar("_M", HookRequest, FeedbackRequest)


@dataclass
class Runtime:
    """Per-process resources created at start-up and closed at shutdown."""

    settings: Settings
    store: FeedbackStore
    issued: IssuedWriter
    fetcher: FhirFetcher
    authenticator: ClientAuthenticator | None


def create_app(settings: Settings | None = None, *, store: FeedbackStore | None = None) -> FastAPI:
    """A configured app. ``store`` replaces the SQLite store built from settings (tests)."""
    settings = settings or get_settings()
    settings.check_startable()
    # httpx and httpcore log every request URL at INFO/DEBUG, and FHIR query URLs carry the patient id.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    services = {service.id: service for service in SERVICES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            timeout=settings.fhir_timeout_seconds,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
        )
        own_store = store or open_store(settings.store_url())
        issued = IssuedWriter(own_store)
        app.state.runtime = Runtime(
            settings=settings,
            store=own_store,
            issued=issued,
            fetcher=FhirFetcher(
                client,
                max_pages=settings.fhir_max_pages,
                max_response_bytes=settings.fhir_max_response_bytes,
                max_resources=settings.max_prefetch_resources,
            ),
            authenticator=_authenticator(settings, client, own_store),
        )
        warm_up(settings)
        tune_gc()
        if not settings.auth_enabled:
            log.warning(
                "client authentication is OFF (development profile): any caller on %s can use this service; "
                "set CDS_PROFILE=production and CDS_TRUSTED_ISSUERS before it sees patient data",
                settings.host,
            )
        try:
            yield
        finally:
            await client.aclose()
            await run_in_threadpool(issued.close)  # everything issued is recorded before the store closes
            if store is None:
                own_store.close()

    app = FastAPI(
        title="VCF appropriateness CDS Hooks service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # Middleware added last runs first: CORS, then client authentication, then the body limit, so a
    # browser sees 401 and 413 answers too.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ClientAuthMiddleware, public_base_url=settings.public_base_url, open_paths=OPEN_PATHS)
    add_cors(app, settings.cors_origins)
    _install_error_handlers(app)
    app.openapi = lambda: _openapi(app, list(services))  # type: ignore[method-assign]

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

    @app.get("/metrics")
    async def metrics() -> Response:
        content, media_type = exposition()
        return Response(content, media_type=media_type)

    async def call_service(request: Request) -> Response:
        started = time.perf_counter()
        service_id: str = request.path_params["service_id"]
        label = service_id if service_id in services else "unknown"
        status = 500
        try:
            response = await _call_service(service_id, request, started)
            status = response.status_code
            return response
        except CdsError as exc:
            status = exc.status_code
            raise
        finally:
            labelled(metrics_module.HOOK_CALLS, label, str(status)).inc()
            labelled(metrics_module.HOOK_LATENCY, label).observe(time.perf_counter() - started)

    async def _call_service(service_id: str, request: Request, started: float) -> Response:
        service = service_for(service_id)
        rt = runtime(request)
        raw = await _json_body(request, rt.settings, parse_hook_body)
        if isinstance(raw, dict):
            check_counts(raw, rt.settings.shape_limits())
        hook_request = _parse(HookRequest, raw)
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
            fetch_without_token=rt.settings.tokenless_fetch,
            timeout=rt.settings.fhir_timeout_seconds,
            budget=rt.settings.fhir_budget_seconds,
            max_resources=rt.settings.max_prefetch_resources,
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
        rt.issued.submit(advice.issued)
        for issued in advice.issued:
            labelled(metrics_module.CARDS, issued.indicator, issued.card_kind).inc()
        for category in advice.ratings:
            labelled(metrics_module.RATINGS, category).inc()
        log.info(
            "hook service=%s hookInstance=%s decision=%s cards=%d elapsed_ms=%.1f",
            service.id,
            hook_request.hookInstance,
            advice.summary,
            len(advice.response.cards),
            (time.perf_counter() - started) * 1000,
        )
        return Response(advice.response.to_json(), media_type="application/json")

    # The hook route is a plain Starlette route: it reads its one path parameter and its raw body
    # itself, so FastAPI's per-call parameter solving and response wrapping (~20 µs of a ~1 ms call)
    # bought nothing. Its OpenAPI operation is written by ``_openapi``. It is matched first: nearly
    # every request is a hook call.
    app.router.routes.insert(0, Route(HOOK_PATH, call_service, methods=["POST"], include_in_schema=False))

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        service = service_for(service_id)
        rt = runtime(request)
        body = _parse(FeedbackRequest, await _json_body(request, rt.settings))

        def record() -> int:
            rt.issued.flush()  # the cards this process issued are in the store before their feedback
            return rt.store.record_feedback(service.id, body.feedback)

        stored = await run_in_threadpool(record)
        for item in body.feedback:
            metrics_module.FEEDBACK.labels(item.outcome).inc()
        log.info("feedback service=%s entries=%d", service.id, stored)
        return JSONResponse({"stored": stored})

    return app


HOOK_PATH = "/cds-services/{service_id}"

# Liveness and aggregate metrics (no patient data): restrict /metrics at the reverse proxy in production.
OPEN_PATHS = frozenset({"/health", "/metrics"})


def warm_up(settings: Settings) -> None:
    """Load the knowledge and run one decision at start-up, so the first real call pays no import or
    validation warm-up (pydantic schemas, regexes, the code indexes)."""
    order = {
        "resourceType": "ServiceRequest",
        "id": "warm-up",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/warm-up"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
    }
    fracture = {
        "resourceType": "Condition",
        "id": "warm-up",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M48.56XA"}], "text": "pain"},
    }
    request = HookRequest.model_validate(
        {
            "hook": "order-select",
            "hookInstance": "warm-up",
            "context": {
                "userId": "Practitioner/warm-up",
                "patientId": "warm-up",
                "selections": ["ServiceRequest/warm-up"],
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]},
            },
        }
    )
    context = SERVICES[0].parse_context(request.context)
    record = read_document(orjson.dumps(fracture))  # the prefetch decoder warms up too
    assert record is not None
    advise(HookCall("warm-up", "warm-up", context, [order], [record], settings.now()), settings).response.to_json()


GC_THRESHOLDS = (50_000, 20, 100)
_gc_tuned = False


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path (once per process).

    Everything loaded by now (modules, knowledge, indexes, pydantic schemas) lives as long as the
    process, so it is frozen out of the collector's sight; and a request allocates thousands of
    containers (the parsed body), which with the default young-generation threshold of 700 set off
    several collections per request. Request data is freed by reference counting; the collector only
    finds the rare cycle, so it can run less often.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_ERRORS = {
    "400": "Invalid JSON, or a request that breaks CDS Hooks 2.0",
    "401": "Missing or invalid client JWT (when authentication is on)",
    "404": "No such CDS service",
    "412": "Required FHIR data neither prefetched nor fetchable",
    "413": "Body, draft orders or prefetch over the configured limits",
}


def _openapi(app: FastAPI, service_ids: list[str]) -> dict[str, Any]:
    """The OpenAPI document, with the request bodies our handlers read (they parse raw JSON
    themselves to answer 400 with an OperationOutcome instead of FastAPI's 422)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["OperationOutcome"] = {"type": "object", "required": ["resourceType", "issue"]}

    def component(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        components.update(body_schema.pop("$defs", {}))
        components[model.__name__] = body_schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    schema["paths"][HOOK_PATH] = {
        "post": {
            "summary": "Call a CDS service (a CDS Hooks 2.0 hook request)",
            "operationId": "call_service",
            "parameters": [{"name": "service_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "Cards and system actions",
                    "content": {"application/json": {"schema": component(HookResponse, "serialization")}},
                }
            },
        }
    }
    bodies: dict[str, type[BaseModel]] = {
        HOOK_PATH: HookRequest,
        "/cds-services/{service_id}/feedback": FeedbackRequest,
    }
    for path, model in bodies.items():
        body_ref = component(model, "validation")
        operation = schema["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_ref}},
        }
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "service_id":
                parameter["schema"] = {"type": "string", "enum": service_ids}
        outcome = {"application/json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}
        operation["responses"].pop("422", None)
        operation["responses"].update(
            {code: {"description": text, "content": outcome} for code, text in _ERRORS.items()}
        )
    app.openapi_schema = schema
    return schema


def _authenticator(settings: Settings, client: httpx.AsyncClient, store: FeedbackStore) -> ClientAuthenticator | None:
    if not settings.auth_enabled:
        return None
    jwks = JwksCache(
        client,
        ttl=settings.jwks_cache_seconds,
        min_refetch=settings.jwks_min_refetch_seconds,
        timeout=settings.fhir_timeout_seconds,
    )
    shared = settings.replay_cache == "database" or (settings.replay_cache is None and settings.workers > 1)
    return ClientAuthenticator(
        settings.trusted_issuers,
        jwks,
        store if shared else ReplayCache(),
        leeway=settings.jwt_leeway_seconds,
        max_lifetime=settings.jwt_max_lifetime_seconds,
    )


async def _json_body(request: Request, settings: Settings, parse: Callable[[bytes], Any] = parse_json) -> Any:
    raw = await request.body()
    if not raw:
        raise BadRequest("The request body is empty; a JSON object is required")
    body = parse(raw)
    check_shape(raw, settings.shape_limits())
    return body


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
