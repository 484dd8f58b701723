"""Two worker processes against one store: nothing lost, nothing counted twice, replays caught across
workers, and /metrics summed over both. On SQLite (one host) and on a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from cds_service.ehr import free_port
from cds_service.feedback_store import open_store
from tests import factories as f
from tests import records
from tests.jwt_helpers import ISS, KeyPair, token
from tests.processes import start, stop

ROOT = Path(__file__).parents[2]
SELECT = "/cds-services/vcf-imaging-order-select"
CALLS = 40


@contextmanager
def two_workers(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["-m", "cds_service", "serve", "--workers", "2", "--port", str(port), "--log-level", "warning"]
    process = start(args, f"{base}/health", env)
    try:
        yield base
    finally:
        stop(process)


def bone_scan_call(n: int) -> dict[str, object]:
    prefetch = f.empty_prefetch()
    prefetch["conditions"] = f.bundle(records.record_for_variant(1))
    order = f.service_request(f"order-{n}", codings=[{"system": f.CPT, "code": "78306"}])
    return f.sandbox_order_select([order], prefetch=prefetch)


def test_two_workers_one_store_nothing_lost_or_double_counted(database_url: str, tmp_path: Path) -> None:
    env = {
        "CDS_DATABASE_URL": database_url,
        "CDS_CLOCK": f"{records.TODAY}T12:00:00Z",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    with two_workers(env) as base:

        def one(n: int) -> dict[str, str]:
            # A new connection per call, so the kernel spreads the calls over both workers.
            card = httpx.post(f"{base}{SELECT}", json=bone_scan_call(n), timeout=30).json()["cards"][0]
            outcome = "accepted" if n % 2 else "overridden"
            entry: dict[str, object] = {
                "card": card["uuid"],
                "outcome": outcome,
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            }
            if outcome == "accepted":
                entry["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
            reply = httpx.post(f"{base}{SELECT}/feedback", json={"feedback": [entry]}, timeout=30)
            assert reply.status_code == 200
            return {"uuid": card["uuid"]}

        with ThreadPoolExecutor(max_workers=8) as pool:
            cards = list(pool.map(one, range(CALLS)))
        metrics = httpx.get(f"{base}/metrics", timeout=10).text

    store = open_store(database_url)
    issued, feedback = store.issued(), store.feedback()
    store.close()
    assert len(issued) == CALLS and {c.card_uuid for c in issued} == {c["uuid"] for c in cards}
    assert len(feedback) == CALLS and all(entry.known_card for entry in feedback)
    report = subprocess.run(
        [sys.executable, "-m", "cds_service", "report", "--database-url", database_url, "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(report.stdout)
    assert body["overall"]["issued"] == CALLS and body["overall"]["answered"] == CALLS
    assert body["byVariant"]["variant 1"]["accepted"] == CALLS // 2
    # Prometheus multiprocess mode sums both workers.
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith('cds_hook_calls_total{service="vcf-imaging-order-select",status="200"}')
    )
    assert float(line.split()[-1]) == CALLS


def test_a_replayed_jwt_is_caught_whichever_worker_gets_it(tmp_path: Path) -> None:
    key = KeyPair("ES384")
    env = {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "CDS_REQUIRE_CLIENT_AUTH": "true",
        "CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": key.jwks()}]),
    }
    with two_workers(env) as base:
        once = token(key, f"{base}/cds-services", header={"jku": None})
        statuses = [
            httpx.get(f"{base}/cds-services", headers={"Authorization": f"Bearer {once}"}, timeout=10).status_code
            for _ in range(8)
        ]
    assert sorted(statuses) == [200] + [401] * 7
