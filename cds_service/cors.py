"""CORS for the service and the fixture FHIR server, in one place.

Browsers (the CDS Hooks sandbox) send a preflight before every call carrying ``Authorization``.
Chromium's private/local network access additionally asks, when a public page such as
sandbox.cds-hooks.org calls 127.0.0.1, for ``Access-Control-Allow-Private-Network: true``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """CORS with preflight on every route for ``origins`` (bearer auth, so no credentials)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        allow_credentials=False,  # "*" with credentials is invalid; CDS Hooks uses bearer headers
        allow_private_network=True,
        max_age=600,
    )
