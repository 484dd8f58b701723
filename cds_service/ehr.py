"""An EHR simulator: fires a scenario's hook at a CDS service and reports what came back.

Like an EHR it reads discovery, finds the service for the scenario's hook, and either fills
prefetch by running the service's templates against the scenario (prefetch mode) or sends
``fhirServer`` with a bearer token and no prefetch (fetch mode).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .fhir_store import FhirStore
from .prefetch import render_template
from .scenarios import Scenario, check_outcome, ratings_of

Mode = Literal["prefetch", "fetch"]


class FireError(RuntimeError):
    """The service could not be called, or did not answer as CDS Hooks requires."""


@dataclass
class FireResult:
    scenario: Scenario
    service_id: str
    mode: Mode
    status: int
    response: dict[str, Any]
    elapsed_ms: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.problems


def prefetch_for(service: dict[str, Any], scenario: Scenario, store: FhirStore) -> dict[str, Any]:
    """What an EHR would prefetch for ``service``; templates it cannot render are skipped."""
    prefetch: dict[str, Any] = {}
    for key, template in (service.get("prefetch") or {}).items():
        query = render_template(template, scenario.context())
        if query is not None:
            prefetch[key] = store.query(query)  # a read that finds nothing is null, as the spec says
    return prefetch


def hook_request(
    scenario: Scenario,
    service: dict[str, Any],
    *,
    mode: Mode,
    fhir_url: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The body of the hook call for ``scenario``."""
    body: dict[str, Any] = {"hookInstance": str(uuid.uuid4()), "hook": scenario.hook, "context": scenario.context()}
    if mode == "prefetch":
        body["prefetch"] = prefetch_for(service, scenario, FhirStore(scenario.record()))
        if fhir_url:
            body["fhirServer"] = fhir_url
    else:
        if not fhir_url:
            raise FireError("fetch mode needs a FHIR server URL")
        body["fhirServer"] = fhir_url
        if token:
            body["fhirAuthorization"] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read launch/patient",
                "subject": "vcf-cds-ehr-simulator",
                "patient": scenario.patient_id,
            }
    return body


def find_service(discovery: dict[str, Any], hook: str) -> dict[str, Any]:
    for service in discovery.get("services", []):
        if service.get("hook") == hook:
            return dict(service)
    raise FireError(f"the service's discovery lists no {hook!r} service")


def fire(
    scenario: Scenario,
    base_url: str,
    *,
    mode: Mode = "prefetch",
    fhir_url: str | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
) -> FireResult:
    """Call the service as an EHR would and compare the answer with the scenario's expectation."""
    own = client is None
    http = client or httpx.Client(timeout=10.0)
    base = base_url.rstrip("/")
    if base.endswith("/cds-services"):
        base = base[: -len("/cds-services")]
    try:
        try:
            discovery = http.get(f"{base}/cds-services").raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise FireError(f"discovery at {base}/cds-services failed: {exc}") from None
        service = find_service(discovery, scenario.hook)
        body = hook_request(scenario, service, mode=mode, fhir_url=fhir_url, token=token)
        started = time.perf_counter()
        try:
            response = http.post(f"{base}/cds-services/{service['id']}", json=body)
        except httpx.HTTPError as exc:
            raise FireError(f"the hook call failed: {exc}") from None
        elapsed = (time.perf_counter() - started) * 1000
        try:
            answer = response.json()
        except ValueError:
            raise FireError(f"the service answered HTTP {response.status_code} without JSON") from None
    finally:
        if own:
            http.close()
    result = FireResult(scenario, service["id"], mode, response.status_code, answer, elapsed)
    if response.status_code != 200:
        result.problems.append(f"HTTP {response.status_code}: {_diagnostics(answer)}")
    else:
        result.problems.extend(check_outcome(scenario, answer))
    return result


def _diagnostics(body: Any) -> str:
    try:
        return str(body["issue"][0]["diagnostics"])
    except (KeyError, IndexError, TypeError):
        return "no OperationOutcome"


# --------------------------------------------------------------------------------------------- display


def render(result: FireResult) -> str:
    """The result for a terminal: each card with its indicator, summary and suggestions, and ratings."""
    marks = {"critical": "[CRITICAL]", "warning": "[WARNING] ", "info": "[INFO]    "}
    lines = [
        f"Scenario {result.scenario.name} ({result.scenario.hook}, {result.mode} mode) -> {result.service_id}: "
        f"HTTP {result.status} in {result.elapsed_ms:.0f} ms",
        f"  {result.scenario.description}",
        "",
    ]
    cards = result.response.get("cards", []) if result.status == 200 else []
    if not cards:
        lines.append("  (no cards)")
    for card in cards:
        lines.append(f"  {marks.get(card.get('indicator'), card.get('indicator'))} {card.get('summary')}")
        for suggestion in card.get("suggestions", []):
            star = "*" if suggestion.get("isRecommended") else "-"
            kinds = "+".join(a.get("type", "?") for a in suggestion.get("actions", []))
            lines.append(f"      {star} {suggestion.get('label')}  ({kinds})")
    ratings = ratings_of(result.response) if result.status == 200 else {}
    lines.append("")
    lines.append("  Ratings: " + (", ".join(f"{ref} = {code}" for ref, code in ratings.items()) or "none"))
    lines.append("")
    if result.ok:
        lines.append("  OK: the expected outcome held.")
    else:
        lines.extend(f"  FAILED: {p}" for p in result.problems)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- temporary FHIR server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def temporary_fhir_server(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """Serve the scenario's record on a free loopback port with a fresh token: (base URL, token)."""
    import uvicorn

    from .fhir_server import create_fhir_app

    token = secrets.token_urlsafe(24)
    port = free_port()
    config = uvicorn.Config(
        create_fhir_app(scenario.record(), token=token), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise FireError("the temporary FHIR server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=5)
