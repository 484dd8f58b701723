"""Limits on what a request may carry: body bytes (before parsing), JSON shape and counts (after).

Each limit answers with a 4xx OperationOutcome that names the setting to raise, never a 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BadRequest, PayloadTooLarge, send_error


@dataclass(frozen=True)
class ShapeLimits:
    max_depth: int
    max_string_length: int
    max_draft_orders: int
    max_prefetch_resources: int


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or ``BadRequest``; nesting too deep for the parser is bad input too.

    orjson parses 2-3x faster than the standard library; from 3.10 on it stops at 1024 levels with an
    error (older releases crashed the process on deep nesting, hence the version floor).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise BadRequest("The request body is nested too deeply") from None
        raise BadRequest("The request body is not valid JSON") from None


def check_shape(body: Any, limits: ShapeLimits, *, body_bytes: int) -> None:
    """Refuse bodies nested deeper, or with longer strings, than the limits allow (one pass).

    Only containers are visited for depth; strings are measured only when the body is larger than
    the string limit (no string can be longer than the body that carries it).
    """
    check_strings = body_bytes > limits.max_string_length
    stack: list[tuple[Any, int]] = [(body, 1)] if type(body) in (dict, list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limits.max_depth:
            raise BadRequest(f"JSON is nested deeper than {limits.max_depth} levels (CDS_MAX_JSON_DEPTH)")
        if type(value) is dict:
            if check_strings and any(len(key) > limits.max_string_length for key in value):
                raise BadRequest(_string_message(limits))
            children = value.values()
        else:
            children = value
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif check_strings and kind is str and len(child) > limits.max_string_length:
                raise BadRequest(_string_message(limits))
    if not check_strings and type(body) is str and len(body) > limits.max_string_length:
        raise BadRequest(_string_message(limits))


def check_counts(body: dict[str, Any], limits: ShapeLimits) -> None:
    """Refuse more draft orders, or more resources in one prefetch key, than the limits allow."""
    context = body.get("context")
    orders = context.get("draftOrders") if isinstance(context, dict) else None
    entries = orders.get("entry") if isinstance(orders, dict) else None
    if isinstance(entries, list) and len(entries) > limits.max_draft_orders:
        raise PayloadTooLarge(
            f"{len(entries)} draft orders; at most {limits.max_draft_orders} are accepted (CDS_MAX_DRAFT_ORDERS)",
            expression=["context.draftOrders.entry"],
        )
    prefetch = body.get("prefetch")
    for key, value in prefetch.items() if isinstance(prefetch, dict) else []:
        found = value.get("entry") if isinstance(value, dict) else None
        if isinstance(found, list) and len(found) > limits.max_prefetch_resources:
            raise PayloadTooLarge(
                f"prefetch key {key!r} holds {len(found)} resources; at most {limits.max_prefetch_resources} are "
                "accepted (CDS_MAX_PREFETCH_RESOURCES)",
                expression=[f"prefetch.{key}"],
            )


def _string_message(limits: ShapeLimits) -> str:
    return f"A string is longer than {limits.max_string_length} characters (CDS_MAX_STRING_LENGTH)"


class BodySizeLimit:
    """Answers 413 with an OperationOutcome when a body is (or announces itself) over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(scope, send)
                    return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_error(send, PayloadTooLarge(f"Request body exceeds the limit of {self.max_bytes} bytes"))


class _TooLarge(Exception):
    pass
