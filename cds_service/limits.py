"""Limits on what a request may carry: body bytes (before parsing), JSON shape and counts (after).

Each limit answers with a 4xx OperationOutcome that names the setting to raise, never a 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .engine.fhir import Document
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


def parse_hook_body(raw: bytes) -> Any:
    """Like ``parse_json``, but each prefetch value comes already read for the engine: a ``Document``
    (or None for ``null``). Prefetch is most of a body, so it is decoded once, straight into the
    engine's structs, never into dicts first.

    One pass over the bytes when everything fits the structs (the usual body). Otherwise (a malformed
    element in some prefetch value, a top-level member CDS Hooks does not define) each prefetch value
    is left as JSON still to decode (``msgspec.Raw``), so ``read_document`` salvages a malformed one on
    its own; and anything unusual (not an object, a prefetch that is not an object, invalid JSON, deep
    nesting) takes the ``parse_json`` path, so it is refused, or read, exactly as any other body.
    """
    try:
        try:
            decoded = _BODY.decode(raw)
            return {f: v for f in _HookBody.__struct_fields__ if (v := getattr(decoded, f)) is not UNSET}
        except msgspec.ValidationError:
            pass  # a value that does not fit the structs: split the body, and read each value alone
        body = {}
        for key, value in _FIELDS.decode(raw).items():
            if key == "prefetch" and memoryview(value)[:1].tobytes() == b"{":
                body[key] = {k: None if _is_null(v) else v for k, v in _FIELDS.decode(value).items()}
            else:
                body[key] = msgspec.json.decode(value)
        return body
    except (msgspec.DecodeError, RecursionError):  # DecodeError includes ValidationError
        return parse_json(raw)


class _HookBody(msgspec.Struct, forbid_unknown_fields=True):
    """The members of a CDS Hooks request; all but prefetch stay plain JSON for the protocol models."""

    hook: Any = UNSET
    hookInstance: Any = UNSET
    fhirServer: Any = UNSET
    fhirAuthorization: Any = UNSET
    context: Any = UNSET
    prefetch: dict[str, Document | None] | UnsetType | None = UNSET


_BODY = msgspec.json.Decoder(_HookBody)
_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _is_null(value: msgspec.Raw) -> bool:
    return len(value) == 4 and bytes(value) == b"null"


def check_shape(raw: bytes, limits: ShapeLimits) -> None:
    """Refuse bodies nested deeper, or with longer strings, than the limits allow.

    ``raw`` must already have parsed as JSON. The check reads the bytes with bytes
    operations that run in C, where a Python walk of the parsed value cost 170 µs for a typical
    42 KiB body (a quarter of the request): escapes are masked, everything but quotes and brackets
    dropped, strings cut out, and the brackets left over peeled one nesting level per pass.
    """
    # Escaped backslashes, then escaped quotes, become two plain bytes (string lengths stay as they
    # are); after that every '"' opens or closes a string.
    masked = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__") if b"\\" in raw else raw
    # A string's raw bytes are never fewer than its characters (UTF-8, escapes), so only a raw
    # string over the limit needs counting exactly (and none can be when the whole body is not).
    longest = max(map(len, masked.split(b'"')[1::2]), default=0) if len(raw) > limits.max_string_length else 0
    if longest > limits.max_string_length:
        _check_string_lengths(orjson.loads(raw), limits)
    quotes_and_brackets = masked.translate(_BRACKETS, _NEITHER)
    # Strings with no bracket inside are now '""'. Every quote is in such a pair, counted from the
    # left, exactly when no string holds a bracket (the usual case): then quotes simply go (two
    # counts and a delete, 11 µs, where removing the pairs took 19); otherwise cut strings out by
    # position.
    if quotes_and_brackets.count(b'""') * 2 == quotes_and_brackets.count(b'"'):
        brackets = quotes_and_brackets.translate(None, b'"')
    else:
        brackets = b"".join(quotes_and_brackets.split(b'"')[0::2])
    depth = 0
    while brackets:
        depth += 1
        if depth > limits.max_depth:
            raise BadRequest(f"JSON is nested deeper than {limits.max_depth} levels (CDS_MAX_JSON_DEPTH)")
        brackets = brackets.replace(b"()", b"")  # each pass removes exactly the innermost pairs


_BRACKETS = bytes.maketrans(b"{[}]", b"(())")
_NEITHER = bytes(b for b in range(256) if b not in b'"{[}]')


def _check_string_lengths(body: Any, limits: ShapeLimits) -> None:
    """The exact check, keys included, for a body holding a raw string longer than the limit."""
    stack = [body]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            if any(len(key) > limits.max_string_length for key in value):
                raise BadRequest(_string_message(limits))
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
        elif type(value) is str and len(value) > limits.max_string_length:
            raise BadRequest(_string_message(limits))


def check_counts(body: dict[str, Any], limits: ShapeLimits) -> None:
    """Refuse more draft orders than the limits allow (prefetch Bundles are counted as they are read,
    by ``read_key``)."""
    context = body.get("context")
    orders = context.get("draftOrders") if isinstance(context, dict) else None
    entries = orders.get("entry") if isinstance(orders, dict) else None
    if isinstance(entries, list) and len(entries) > limits.max_draft_orders:
        raise PayloadTooLarge(
            f"{len(entries)} draft orders; at most {limits.max_draft_orders} are accepted (CDS_MAX_DRAFT_ORDERS)",
            expression=["context.draftOrders.entry"],
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
