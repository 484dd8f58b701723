"""The ``cds-service`` command.

- ``serve``: run the CDS Hooks service.
- ``fire SCENARIO|all``: act as the EHR: fire a fixture scenario's hook and check the outcome.
- ``fhir-server``: a read-only FHIR R4 server over the fixture scenarios.
- ``report``: acceptance and override rates from the feedback store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from .settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="cds-service", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the CDS Hooks service")
    serve.add_argument("--host", default=settings.host, help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=settings.port, help="port (default %(default)s)")
    serve.add_argument("--workers", type=int, default=settings.workers, help="worker processes (default %(default)s)")
    serve.add_argument("--log-level", default=settings.log_level, choices=["debug", "info", "warning", "error"])

    fire = commands.add_parser("fire", help="fire a fixture scenario's hook at a service, as an EHR would")
    fire.add_argument("scenario", help="scenario name (file name in --fixtures without .json), a path, or 'all'")
    fire.add_argument("--url", default=f"http://{settings.host}:{settings.port}", help="service base URL (%(default)s)")
    fire.add_argument(
        "--mode",
        choices=["prefetch", "fetch"],
        default="prefetch",
        help="fill prefetch, or make the service fetch from a FHIR server (default %(default)s)",
    )
    fire.add_argument("--fhir-url", help="FHIR server for fetch mode (default: start one for the scenario)")
    fire.add_argument("--token", help="bearer token to send with --fhir-url in fetch mode")
    _fixture_options(fire)
    fire.add_argument("--json", action="store_true", help="print machine-readable JSON")

    fhir = commands.add_parser("fhir-server", help="serve the fixture scenarios as a read-only FHIR R4 server")
    fhir.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    fhir.add_argument("--port", type=int, default=8081, help="port (default %(default)s)")
    fhir.add_argument("--token", help="require this bearer token on every request but /metadata")
    _fixture_options(fhir)

    report = commands.add_parser("report", help="acceptance and override rates from the feedback store")
    report.add_argument("--since", type=date.fromisoformat, help="only cards and feedback from this day (YYYY-MM-DD)")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report.add_argument("--database-url", help="store to read (default: CDS_DATABASE_URL or CDS_FEEDBACK_DB_PATH)")
    return parser


def _fixture_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fixtures", type=Path, default=Path("fixtures"), help="scenario folder (default %(default)s)")
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        help="the day scenario dates are relative to (default: the service clock, CDS_CLOCK, or today)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cds-service`` and ``python -m cds_service``."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args.host, args.port, args.workers, args.log_level)
    if args.command == "fire":
        return _fire(args)
    if args.command == "report":
        return _report(args)
    return _fhir_server(args)


def _report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, time

    from .feedback_store import open_store
    from .report import RENDERERS, build_report

    url = args.database_url or get_settings().store_url()
    try:
        store = open_store(url)
    except Exception as exc:  # any driver error: say which store could not be opened, not a traceback
        print(f"cds-service report: cannot open the store: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        since = datetime.combine(args.since, time.min, tzinfo=UTC) if args.since else None
        print(RENDERERS[args.format](build_report(store, since)))
    finally:
        store.close()
    return 0


def _today(given: date | None) -> date:
    return given or get_settings().now().date()


def _serve(host: str, port: int, workers: int, log_level: str) -> int:
    from .serving import serve
    from .settings import ConfigurationError

    try:
        get_settings().check_startable()
    except ConfigurationError as exc:
        print(f"cds-service serve: refusing to start: {exc}", file=sys.stderr)
        return 2

    if workers < 1:
        print("cds-service serve: --workers must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Workers read their settings from the environment: tell them how many they are, and where to pool
    # their metrics (a fresh folder: Prometheus multiprocess mode must not see a previous run's files).
    os.environ["CDS_WORKERS"] = str(workers)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cds-metrics-")
    serve("cds_service.app:app", host=host, port=port, workers=workers, log_level=log_level)
    return 0


def _fire(args: argparse.Namespace) -> int:
    from .ehr import FireError, fire, render, temporary_fhir_server
    from .scenarios import ScenarioError, find_scenario, load_all, load_scenario

    today = _today(args.today)
    try:
        if args.scenario == "all":
            scenarios = load_all(args.fixtures, today)
        else:
            scenarios = [load_scenario(find_scenario(args.scenario, args.fixtures), today)]
        results = []
        for scenario in scenarios:
            if args.mode == "fetch" and not args.fhir_url:
                with temporary_fhir_server(scenario) as (fhir_url, token):
                    results.append(fire(scenario, args.url, mode="fetch", fhir_url=fhir_url, token=token))
            else:
                results.append(fire(scenario, args.url, mode=args.mode, fhir_url=args.fhir_url, token=args.token))
    except (ScenarioError, FireError) as exc:
        print(f"cds-service fire: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "scenario": r.scenario.name,
                        "mode": r.mode,
                        "service": r.service_id,
                        "status": r.status,
                        "ok": r.ok,
                        "problems": r.problems,
                        "elapsedMs": round(r.elapsed_ms, 1),
                        "response": r.response,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        print("\n\n".join(render(r) for r in results))
        if len(results) > 1:
            passed = sum(r.ok for r in results)
            print(f"\n{passed} passed, {len(results) - passed} failed")
    return 0 if all(r.ok for r in results) else 1


def _fhir_server(args: argparse.Namespace) -> int:
    import uvicorn

    from .fhir_server import create_fhir_app
    from .scenarios import ScenarioError, load_all

    try:
        scenarios = load_all(args.fixtures, _today(args.today))
    except ScenarioError as exc:
        print(f"cds-service fhir-server: {exc}", file=sys.stderr)
        return 2
    if not scenarios:
        print(f"cds-service fhir-server: no scenarios in {args.fixtures}", file=sys.stderr)
        return 2
    resources = [r for s in scenarios for r in s.record()]
    print(f"Serving {len(resources)} resources of {len(scenarios)} scenarios at http://{args.host}:{args.port}")
    uvicorn.run(create_fhir_app(resources, token=args.token), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
