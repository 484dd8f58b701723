"""The service's exception tree, and how each maps to an HTTP status and an OperationOutcome.

Raise the most specific class; ``app.py`` turns any of them into a response in one place::

    CdsError                      500  (base; never raised directly)
    ├── BadRequest                400  invalid JSON or a request that breaks CDS Hooks 2.0
    │   └── HookMismatch          400  the request's hook is not the one the service answers
    ├── UnknownService            404  no service with that id
    ├── Unauthorized              401  bad or missing client JWT (no detail is ever returned)
    ├── PayloadTooLarge           413  body over the configured limit
    └── PreconditionFailed        412  required FHIR data neither prefetched nor fetchable
        └── FhirFetchError        412  a FHIR server query failed (names the query, never the token)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar


class CdsError(Exception):
    """Base of every error this service reports to a CDS Client."""

    status_code: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"

    def __init__(self, message: str, *, expression: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression or []

    def to_operation_outcome(self) -> dict[str, Any]:
        """The FHIR R4 OperationOutcome that is this error's response body."""
        issue: dict[str, Any] = {"severity": "error", "code": self.issue_code, "diagnostics": self.message}
        if self.expression:
            issue["expression"] = self.expression
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class BadRequest(CdsError):
    """The body is not JSON, or is JSON that breaks the CDS Hooks 2.0 request rules."""

    status_code = 400
    issue_code = "invalid"


class HookMismatch(BadRequest):
    """The request names a hook other than the one this service is registered for."""


class UnknownService(CdsError):
    """No CDS service has the requested id."""

    status_code = 404
    issue_code = "not-found"


class Unauthorized(CdsError):
    """The client JWT is missing or invalid. The response never says why."""

    status_code = 401
    issue_code = "login"

    def to_operation_outcome(self) -> dict[str, Any]:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.issue_code, "diagnostics": "Unauthorized"}],
        }


class PayloadTooLarge(CdsError):
    """The request body exceeds the configured limit."""

    status_code = 413
    issue_code = "too-costly"


class PreconditionFailed(CdsError):
    """Data the service needs was neither prefetched nor obtainable from the FHIR server."""

    status_code = 412
    issue_code = "incomplete"


class FhirFetchError(PreconditionFailed):
    """A query against the CDS Client's FHIR server failed; ``query`` is safe to show and log."""

    issue_code = "transient"

    def __init__(self, query: str, reason: str) -> None:
        super().__init__(f"FHIR query {query!r} failed: {reason}", expression=[query])
        self.query = query
        self.reason = reason


async def send_error(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    error: CdsError,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer from ASGI middleware (which runs outside the app's handlers) exactly as the app would."""
    body = json.dumps(error.to_operation_outcome()).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": error.status_code, "headers": head})
    await send({"type": "http.response.body", "body": body})
