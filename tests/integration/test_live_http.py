"""The real service and the fixture FHIR server as processes on 127.0.0.1, driven over HTTP.

Every fixture scenario runs in both modes: prefetch filled by the EHR simulator, and fetch, where
the service reads the fixture FHIR server with the bearer token it was given.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cds_service.ehr import fire, free_port
from cds_service.scenarios import Scenario, load_all
from tests.processes import ROOT, start, stop
from tests.records import TODAY

SCENARIOS = load_all(ROOT / "fixtures", TODAY)
TOKEN = "integration-token-5d1f"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        "CDS_CLOCK": f"{TODAY.isoformat()}T12:00:00Z",
        "CDS_FEEDBACK_DB_PATH": str(tmp_path_factory.mktemp("db") / "feedback.sqlite3"),
        "CDS_FHIR_BUDGET_SECONDS": "5",
    }
    process = start(
        ["-m", "cds_service", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        f"http://127.0.0.1:{port}/health",
        env,
    )
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[str]:
    port = free_port()
    args = ["fhir-server", "--port", str(port), "--token", TOKEN, "--today", TODAY.isoformat()]
    process = start(["-m", "cds_service", *args], f"http://127.0.0.1:{port}/metadata")
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_in_prefetch_mode(service: str, scenario: Scenario) -> None:
    result = fire(scenario, service, mode="prefetch")
    assert result.status == 200 and result.problems == []


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_in_fetch_mode(service: str, fhir_server: str, scenario: Scenario) -> None:
    result = fire(scenario, service, mode="fetch", fhir_url=fhir_server, token=TOKEN)
    assert result.status == 200 and result.problems == []


def test_fetch_with_a_refused_token_is_412_naming_the_query(service: str, fhir_server: str) -> None:
    result = fire(SCENARIOS[0], service, mode="fetch", fhir_url=fhir_server, token="wrong")
    assert result.status == 412
    issue = result.response["issue"][0]
    assert "refused access (HTTP 401)" in issue["diagnostics"] and "wrong" not in json.dumps(result.response)


def test_fire_command_exit_status_and_json(service: str) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_service",
            "fire",
            "v2-ct-without-contrast",
            "--url",
            service,
            "--today",
            TODAY.isoformat(),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    (report,) = json.loads(ok.stdout)
    assert report["ok"] and report["response"]["cards"][0]["indicator"] == "info"
    readable = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_service",
            "fire",
            "pacemaker",
            "--url",
            service,
            "--today",
            TODAY.isoformat(),
            "--mode",
            "fetch",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert readable.returncode == 0, readable.stderr
    assert "[WARNING]" in readable.stdout and "MRI contraindicated" in readable.stdout
    assert "OK: the expected outcome held." in readable.stdout


def test_fire_exits_1_when_the_expected_outcome_does_not_hold(service: str, tmp_path: Path) -> None:
    fixture = json.loads((ROOT / "fixtures" / "v2-ct-without-contrast.json").read_text())
    fixture["expected"]["cards"] = []
    (tmp_path / "changed.json").write_text(json.dumps(fixture))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_service",
            "fire",
            "changed",
            "--fixtures",
            str(tmp_path),
            "--url",
            service,
            "--today",
            TODAY.isoformat(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1 and "FAILED: cards" in run.stdout


def test_fixture_fhir_server_answers_what_the_sandbox_reads(fhir_server: str) -> None:
    """Product spec §4: /metadata, /Patient, /Patient/{id} with a name, /Condition?patient=, CORS."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "https://sandbox.cds-hooks.org"}
    assert httpx.get(f"{fhir_server}/metadata").json()["resourceType"] == "CapabilityStatement"
    patients = httpx.get(f"{fhir_server}/Patient", headers=headers)
    assert patients.headers["access-control-allow-origin"] == "*"
    assert len(patients.json()["entry"]) == len(SCENARIOS)
    patient = httpx.get(f"{fhir_server}/Patient/v1-icd-cpt", headers=headers).json()
    assert patient["name"][0]["family"] and isinstance(patient["name"][0]["given"], list)
    conditions = httpx.get(f"{fhir_server}/Condition", params={"patient": "v1-icd-cpt"}, headers=headers).json()
    assert {e["resource"]["id"] for e in conditions["entry"]} == {"v1-icd-cpt-vcf", "v1-icd-cpt-pain"}
    posted = httpx.post(f"{fhir_server}/Condition/_search", data={"patient": "v1-icd-cpt"}, headers=headers).json()
    assert posted["total"] == 2
    preflight = httpx.options(
        f"{fhir_server}/Patient",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert httpx.get(f"{fhir_server}/Patient").status_code == 401  # token required when configured
    assert httpx.get(f"{fhir_server}/Condition", params={"foo": "1"}, headers=headers).status_code == 400


def test_slow_fhir_server_is_cut_off_by_the_fetch_budget(tmp_path: Path) -> None:
    """A FHIR server that answers after 3 s: the service gives up at its 0.3 s budget with a 412."""
    import http.server
    import threading

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(3)
            body = b'{"resourceType": "Bundle", "type": "searchset"}'
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the service gave up long ago: that is the point of the test

        def log_message(self, *args: object) -> None:
            pass

    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    port = free_port()
    env = {"CDS_FEEDBACK_DB_PATH": str(tmp_path / "f.db"), "CDS_FHIR_BUDGET_SECONDS": "0.3"}
    process = start(
        ["-m", "cds_service", "serve", "--port", str(port), "--log-level", "warning"],
        f"http://127.0.0.1:{port}/health",
        env,
    )
    try:
        started = time.perf_counter()
        result = fire(
            SCENARIOS[0],
            f"http://127.0.0.1:{port}",
            mode="fetch",
            fhir_url=f"http://127.0.0.1:{slow.server_address[1]}",
            token=TOKEN,
        )
        elapsed = time.perf_counter() - started
    finally:
        stop(process)
        slow.shutdown()
    assert result.status == 412
    diagnostics = result.response["issue"][0]["diagnostics"]
    assert "budget" in diagnostics or "no answer" in diagnostics
    assert elapsed < 2.5  # well before the slow server would have answered
