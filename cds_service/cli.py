"""The ``cds-service`` command: ``serve`` runs the service (more subcommands join as they land)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the CDS Hooks service")
    serve.add_argument("--host", default=settings.host, help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=settings.port, help="port (default %(default)s)")
    serve.add_argument("--log-level", default=settings.log_level, choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cds-service`` and ``python -m cds_service``."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args.host, args.port, args.log_level)
    return 2  # unreachable: argparse enforces a subcommand


def _serve(host: str, port: int, log_level: str) -> int:
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # access_log off: uvicorn's access lines carry query strings; our own log line names the hook call.
    uvicorn.run("cds_service.app:app", host=host, port=port, log_level=log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
