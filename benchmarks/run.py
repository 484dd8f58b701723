"""Benchmarks: the engine in process, the service over HTTP against a bare baseline, fetch mode,
start-up and memory. Prints a table; nothing here asserts a time.

    python -m benchmarks.run            # the full run (a few minutes on 2 cores)
    python -m benchmarks.run --quick    # shorter runs, for a smoke check

Every server is a real uvicorn process on 127.0.0.1; the load generator is a small asyncio HTTP/1.1
client with keep-alive connections and pre-built requests, so that it costs little CPU itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.records import draft_order, order_select_body, record
from cds_service.ehr import free_port
from cds_service.engine.fhir import Resource, read_as

ROOT = Path(__file__).parents[1]
SELECT = "/cds-services/vcf-imaging-order-select"


# ------------------------------------------------------------------------------------------------ engine


def _read(resource: dict[str, Any]) -> Resource:
    """A resource as the engine receives it from prefetch."""
    found = read_as(resource, Resource)
    assert found is not None
    return found


def bench_engine(quick: bool) -> list[str]:
    from cds_service.advice import HookCall, advise
    from cds_service.engine.evaluate import default_engine
    from cds_service.protocol import OrderSelectContext
    from cds_service.settings import Settings

    settings = Settings(feedback_db_path=":memory:")
    engine = default_engine()
    order = draft_order()
    context = OrderSelectContext.model_validate(
        {
            "userId": "Practitioner/1",
            "patientId": "bench",
            "selections": ["ServiceRequest/bench-order"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]},
        }
    )
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    rows = [
        "New patient: every cache emptied before each call (texts, codes and facts unseen). Same patient: "
        "the call repeated, as order-select fires again for each change in one ordering session.",
        "",
        "| resources | new patient p50 ms | p99 ms | p50 per resource µs | same patient p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    p50s = {}
    for size, runs in ((10, 2000), (100, 1000), (2000, 100)):
        runs = max(20, runs // 10) if quick else runs
        # The record as the engine reads it: decoded into the thin structs, as prefetch is.
        call = HookCall("bench", "bench", context, [order], [_read(r) for r in record(size)], now)
        advise(call, settings)
        cold, warm = [], []
        for _ in range(runs):
            engine.text.seen.clear()
            engine.terminology.looked_up.clear()
            engine.facts_cache.clear()
            started = time.perf_counter()
            advise(call, settings)
            cold.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            advise(call, settings)
            warm.append((time.perf_counter() - started) * 1000)
        p50 = percentile(cold, 50)
        p50s[size] = p50
        rows.append(
            f"| {size} | {p50:.2f} | {percentile(cold, 99):.2f} | {p50 * 1000 / size:.1f} | "
            f"{percentile(warm, 50):.2f} | {percentile(warm, 99):.2f} |"
        )
    rows.append("")
    rows.append(
        f"Growth for a new patient: 2,000 vs 100 resources costs {p50s[2000] / p50s[100]:.1f}x for 20x the resources "
        f"(10 vs 100: {p50s[100] / p50s[10]:.1f}x for 10x)."
    )
    return rows


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# ------------------------------------------------------------------------------------------------- load


@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    median_rps: float | None = None  # set when pooled from several rounds

    @property
    def rps(self) -> float:
        if self.median_rps is not None:
            return self.median_rps
        return self.requests / self.seconds if self.seconds else 0.0

    @staticmethod
    def pooled(rounds: list[Load]) -> Load:
        """Several rounds as one: the median round's req/s (robust to a round disturbed by the machine's
        other work), and every round's latencies."""
        rates = sorted(r.rps for r in rounds)
        return Load(
            requests=sum(r.requests for r in rounds),
            seconds=sum(r.seconds for r in rounds),
            latencies_ms=[ms for r in rounds for ms in r.latencies_ms],
            errors=sum(r.errors for r in rounds),
            median_rps=rates[len(rates) // 2],
        )

    def cells(self) -> str:
        lat = self.latencies_ms or [0.0]
        return f"{self.rps:,.0f} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} | {percentile(lat, 99):.1f}"


def request_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _worker(port: int, payloads: list[bytes], deadline: float, count: int | None, out: Load) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and (count is None or out.requests < count):
            started = time.perf_counter()
            writer.write(payloads[out.requests % len(payloads)])
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            out.latencies_ms.append((time.perf_counter() - started) * 1000)
            out.requests += 1
            if not head.startswith(b"HTTP/1.1 200"):
                out.errors += 1
    finally:
        writer.close()


def load(
    port: int, payload: bytes | list[bytes], *, concurrency: int, seconds: float, count: int | None = None
) -> Load:
    """Requests from ``concurrency`` keep-alive connections for ``seconds`` (or ``count`` requests);
    with several payloads, each request takes the next one."""
    payloads = payload if isinstance(payload, list) else [payload]

    async def main() -> Load:
        out = Load(0, 0.0, [], 0)
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_worker(port, payloads, deadline, count, out) for _ in range(concurrency)))
        out.seconds = time.perf_counter() - started
        return out

    return asyncio.run(main())


# ------------------------------------------------------------------------------------------------ servers


@contextmanager
def server(args: list[str], env: dict[str, str] | None = None, ready: str = "/health") -> Iterator[tuple[int, int]]:
    """A uvicorn process on a free loopback port: (port, pid). Its stderr goes to a temporary file,
    quoted in the error if it stops before it is told to."""
    port = free_port()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service.serving", *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_ready(port, ready)
            yield port, process.pid
        except OSError as exc:
            if process.poll() is not None:
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{args[0]} exited with {process.returncode}:\n{tail}") from exc
            raise
        finally:
            process.terminate()
            process.wait(timeout=15)


def wait_ready(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not become ready")


def service_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {"CDS_FEEDBACK_DB_PATH": str(tmp / f"feedback-{free_port()}.sqlite3"), "CDS_LOG_LEVEL": "warning", **extra}


def bench_http(tmp: Path, quick: bool) -> list[str]:
    same = [json.dumps(order_select_body(100)).encode()]
    distinct = [json.dumps(order_select_body(100, patient=p)).encode() for p in range(1, 1025)]
    seconds, rounds = (2.0, 1) if quick else (3.0, 3)
    rows = [
        f"Typical order-select call: one selected CT draft, prefetch with a 100-resource record "
        f"({len(same[0]) / 1024:.0f} KiB). Same patient: the identical call repeated (order-select re-fires "
        "for each change of an order). New patients: 1,024 distinct records in turn, more than the facts "
        f"cache holds. Each cell: {rounds} round(s) of {seconds:.0f} s of load per server after a 0.5 s warm-up, "
        "baseline and service alternating within each round; req/s is the median round, latencies are pooled.",
        "",
        "| workers | calls | concurrency | server | req/s | p50 ms | p95 ms | p99 ms | vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for workers in (1, 2):
        common = ["--workers", str(workers)]
        service = server(["cds_service.app:app", *common], service_env(tmp))
        baseline = server(["benchmarks.baseline:app", *common])
        with service as (service_port, _), baseline as (base_port, _):
            for label, bodies in (("same patient", same), ("new patients", distinct)):
                service_payload = [request_bytes(service_port, SELECT, b) for b in bodies]
                base_payload = [request_bytes(base_port, SELECT, b) for b in bodies]
                for concurrency in (1, 16, 64):
                    base_rounds, our_rounds = [], []
                    for _ in range(rounds):
                        load(base_port, base_payload, concurrency=concurrency, seconds=0.5)
                        base_rounds.append(load(base_port, base_payload, concurrency=concurrency, seconds=seconds))
                        load(service_port, service_payload, concurrency=concurrency, seconds=0.5)
                        our_rounds.append(load(service_port, service_payload, concurrency=concurrency, seconds=seconds))
                    base, ours = Load.pooled(base_rounds), Load.pooled(our_rounds)
                    ratio = ours.rps / base.rps if base.rps else 0
                    errors = f" ({ours.errors} errors)" if ours.errors else ""
                    rows.append(f"| {workers} | {label} | {concurrency} | baseline | {base.cells()} | |")
                    rows.append(
                        f"| {workers} | {label} | {concurrency} | service | {ours.cells()} | {ratio:.0%}{errors} |"
                    )
    return rows


def bench_fetch(tmp: Path, quick: bool) -> list[str]:
    body = json.dumps(order_select_body(100, with_prefetch=False, fhir_server="http://placeholder")).encode()
    seconds = 2.0 if quick else 5.0
    rows = [
        "Prefetch absent: the service reads the 100-resource record from a local FHIR server (4 queries per "
        "call, run concurrently).",
        "",
        "| FHIR server latency | concurrency | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for delay in (0, 50):
        fhir_env = {"BENCH_FHIR_DELAY_MS": str(delay)}
        with server(["benchmarks.fhir_latency:app"], fhir_env, ready="/metadata") as (fhir_port, _):
            call = json.loads(body)
            call["fhirServer"] = f"http://127.0.0.1:{fhir_port}"
            payload_body = json.dumps(call).encode()
            env = service_env(tmp, CDS_FHIR_BUDGET_SECONDS="2")
            with server(["cds_service.app:app"], env) as (service_port, _):
                payload = request_bytes(service_port, SELECT, payload_body)
                for concurrency in (1, 16):
                    load(service_port, payload, concurrency=concurrency, seconds=1)
                    result = load(service_port, payload, concurrency=concurrency, seconds=seconds)
                    errors = f" ({result.errors} errors)" if result.errors else ""
                    rows.append(f"| {delay} ms | {concurrency} | {result.cells()}{errors} |")
    rows.append("")
    rows.append(
        "With 50 ms per FHIR answer, four sequential queries would take over 200 ms; the p50 near 50 ms "
        "shows them running concurrently."
    )
    return rows


def bench_startup_and_memory(tmp: Path, quick: bool) -> list[str]:
    body = json.dumps(order_select_body(100)).encode()
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **service_env(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        first_ok = None
        first_latency = None
        while time.perf_counter() - started < 30:
            try:
                sent = time.perf_counter()
                response = httpx.post(
                    f"http://127.0.0.1:{port}{SELECT}",
                    content=body,
                    timeout=5,
                    headers={"Content-Type": "application/json"},
                )
                if response.status_code == 200:
                    first_ok = time.perf_counter() - started
                    first_latency = (time.perf_counter() - sent) * 1000
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        rows.append(
            f"- Process start to first successful hook response: {first_ok * 1000:.0f} ms"
            if first_ok
            else "- The service did not answer within 30 s"
        )
        rows.append(f"- Latency of that first hook request: {first_latency:.1f} ms" if first_latency else "")
        # 1,024 patients in turn, so every bounded cache and memo fills and turns over; one body repeated
        # would only ever hold one patient.
        patients = [json.dumps(order_select_body(100, patient=p)).encode() for p in range(1, 1025)]
        payload = [request_bytes(port, SELECT, b) for b in patients]
        total = 2000 if quick else 10_000
        marks = []
        done = 0
        marks.append((0, rss_mib(process.pid)))
        for _ in range(5):
            load(port, payload, concurrency=16, seconds=600, count=total // 5)
            done += total // 5
            marks.append((done, rss_mib(process.pid)))
        rows.append(
            "- Resident memory (MiB) after N requests (concurrency 16, 1,024 patients in turn): "
            + ", ".join(f"{n:,}: {mib:.1f}" for n, mib in marks)
        )
        growth = marks[-1][1] - marks[1][1]
        rows.append(f"- Growth from {marks[1][0]:,} to {marks[-1][0]:,} requests: {growth:+.1f} MiB")
    finally:
        process.terminate()
        process.wait(timeout=15)
    return rows


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke check, not figures to quote)")
    parser.add_argument("--only", choices=["engine", "http", "fetch", "startup"], action="append")
    args = parser.parse_args(argv)
    sections = args.only or ["engine", "http", "fetch", "startup"]
    print(
        f"# Benchmarks {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}{' (quick)' if args.quick else ''}\n"
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        titles = {
            "engine": "Engine in process (facts -> variant -> ratings -> cards)",
            "http": "Over HTTP on 127.0.0.1 (uvicorn), against the bare baseline",
            "fetch": "Fetch mode",
            "startup": "Start-up and memory",
        }
        runners = {
            "engine": lambda: bench_engine(args.quick),
            "http": lambda: bench_http(tmp, args.quick),
            "fetch": lambda: bench_fetch(tmp, args.quick),
            "startup": lambda: bench_startup_and_memory(tmp, args.quick),
        }
        for section in sections:
            print(f"## {titles[section]}\n")
            print("\n".join(runners[section]()), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
