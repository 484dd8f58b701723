"""Prefetch: render templates, tell each key's state, and fill what is missing from the FHIR server.

CDS Hooks 2.0 §Prefetch: a key may be absent (the client chose not to or could not satisfy it),
``null`` (no data: "MUST have a value of null"), an empty Bundle, a Bundle, a single resource, or an
OperationOutcome (the client's prefetch failed). Absent and failed keys are fetched from
``fhirServer``; ``null`` and empty Bundles are answers, not gaps, and are never re-fetched.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .engine.fhir import Resource, read_document
from .errors import FhirFetchError, PayloadTooLarge, PreconditionFailed
from .fhir_client import FhirFetcher
from .metrics import FHIR_FETCHES
from .protocol import HookRequest

_TOKEN_RE = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")


@dataclass(frozen=True)
class PrefetchTemplate:
    """One prefetch key as advertised in discovery; ``required`` keys must be had one way or another."""

    key: str
    query: str
    required: bool = True


class KeyState(Enum):
    ABSENT = "absent"
    NULL = "null"
    EMPTY_BUNDLE = "empty-bundle"
    BUNDLE = "bundle"
    RESOURCE = "resource"
    OPERATION_OUTCOME = "operation-outcome"


def render_template(query: str, context: Mapping[str, Any]) -> str | None:
    """The template with each ``{{context.x}}`` replaced, or None when a token has no primitive value."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        value = context.get(match.group(1))
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            missing = True
            return ""
        return str(value)

    rendered = _TOKEN_RE.sub(substitute, query)
    return None if missing else rendered


def key_state(prefetch: Mapping[str, Any] | None, key: str) -> KeyState:
    """How the client answered one prefetch key."""
    return read_key(prefetch, key)[0]


def read_key(
    prefetch: Mapping[str, Any] | None, key: str, *, max_resources: int | None = None
) -> tuple[KeyState, list[Resource]]:
    """How the client answered one prefetch key, and the resources the answer holds (one pass).

    A value is what ``parse_hook_body`` leaves (a ``Document`` already read, or ``msgspec.Raw`` still to
    decode) or parsed JSON. More than ``max_resources`` Bundle entries raise ``PayloadTooLarge``.
    """
    if prefetch is None or key not in prefetch:
        return KeyState.ABSENT, []
    value = prefetch[key]
    if value is None:
        return KeyState.NULL, []
    document = read_document(value)
    if document is None:
        return KeyState.OPERATION_OUTCOME, []  # not a resource: treat as a failed prefetch
    kind = document.resourceType
    if kind == "OperationOutcome":
        return KeyState.OPERATION_OUTCOME, []
    if kind == "Bundle":
        if max_resources is not None and len(document.entry) > max_resources:
            raise PayloadTooLarge(
                f"prefetch key {key!r} holds {len(document.entry)} resources; at most {max_resources} are "
                "accepted (CDS_MAX_PREFETCH_RESOURCES)",
                expression=[f"prefetch.{key}"],
            )
        resources = document.resources()
        if resources:
            return KeyState.BUNDLE, resources
        if any(e.resource is not None for e in document.entry):
            return KeyState.OPERATION_OUTCOME, []  # every entry an OperationOutcome
        return KeyState.EMPTY_BUNDLE, []
    return (KeyState.RESOURCE, [document]) if kind is not None else (KeyState.OPERATION_OUTCOME, [])


@dataclass
class ResolvedPrefetch:
    """Resources per key, and where each key's data came from (for logs and tests)."""

    resources: dict[str, list[Resource]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def all_resources(self) -> list[Resource]:
        """Every key's resources once (the same resource may answer two keys)."""
        everything = [r for resources in self.resources.values() for r in resources]
        if len({r.id for r in everything}) == len(everything):
            # The usual case: no two share an id (let alone a type and id), so there is nothing to
            # drop. A set of the ids alone, not of (type, id) pairs: no tuple to build and hash per
            # resource (a tenth of the prefetch bookkeeping of a call).
            return everything
        seen: set[tuple[str, str]] = set()
        out: list[Resource] = []
        for resources in self.resources.values():
            for resource in resources:
                kind, ident = resource.resourceType, resource.id
                key = (kind, ident) if kind is not None and ident is not None else ("", str(id(resource)))
                if key not in seen:
                    seen.add(key)
                    out.append(resource)
        return out


async def resolve_prefetch(
    templates: list[PrefetchTemplate],
    request: HookRequest,
    fetcher: FhirFetcher | None,
    *,
    fetch_without_token: bool,
    timeout: float,
    budget: float,
    max_resources: int | None = None,
) -> ResolvedPrefetch:
    """Every template's resources, from prefetch where given, else fetched concurrently.

    Raises ``PreconditionFailed`` (412) when a required key can be had neither way; an optional key
    that cannot be had is left empty; ``PayloadTooLarge`` (413) when a prefetch Bundle holds more than
    ``max_resources`` entries.
    """
    resolved = ResolvedPrefetch()
    to_fetch: list[tuple[PrefetchTemplate, str]] = []
    unobtainable: list[str] = []
    for template in templates:
        state, given = read_key(request.prefetch, template.key, max_resources=max_resources)
        if state in (KeyState.NULL, KeyState.EMPTY_BUNDLE):
            resolved.resources[template.key] = []
            resolved.origin[template.key] = f"prefetch:{state.value}"
        elif state in (KeyState.BUNDLE, KeyState.RESOURCE):
            resolved.resources[template.key] = given
            resolved.origin[template.key] = f"prefetch:{state.value}"
        else:
            query = render_template(template.query, request.context)
            if query is None:
                # A template the context cannot fill (say encounterId absent) asks for nothing.
                resolved.resources[template.key] = []
                resolved.origin[template.key] = "not-applicable"
            elif _may_fetch(request, fetcher, fetch_without_token):
                to_fetch.append((template, query))
            elif template.required:
                unobtainable.append(template.key)
            else:
                resolved.resources[template.key] = []
                resolved.origin[template.key] = f"unavailable:{state.value}"
    if unobtainable:
        raise PreconditionFailed(
            "Required prefetch data is missing and cannot be fetched (no usable fhirServer and "
            f"fhirAuthorization): {', '.join(unobtainable)}",
            expression=[f"prefetch.{key}" for key in unobtainable],
        )
    if to_fetch:
        assert fetcher is not None and request.fhirServer is not None
        await _fetch_all(resolved, to_fetch, request, fetcher, timeout=timeout, budget=budget)
    return resolved


def _may_fetch(request: HookRequest, fetcher: FhirFetcher | None, fetch_without_token: bool) -> bool:
    if fetcher is None or request.fhirServer is None:
        return False
    return request.fhirAuthorization is not None or fetch_without_token


async def _fetch_all(
    resolved: ResolvedPrefetch,
    to_fetch: list[tuple[PrefetchTemplate, str]],
    request: HookRequest,
    fetcher: FhirFetcher,
    *,
    timeout: float,
    budget: float,
) -> None:
    assert request.fhirServer is not None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    deadline = time.monotonic() + budget

    async def one(template: PrefetchTemplate, query: str) -> list[Resource]:
        remaining = max(0.001, deadline - time.monotonic())
        try:
            async with asyncio.timeout(remaining):
                return await fetcher.fetch(
                    request.fhirServer or "", query, token=token, timeout=min(timeout, remaining)
                )
        except TimeoutError:
            raise FhirFetchError(query, f"the fetch budget of {budget:.2f} s ran out") from None

    results = await asyncio.gather(*(one(t, q) for t, q in to_fetch), return_exceptions=True)
    for result in results:
        FHIR_FETCHES.labels("failed" if isinstance(result, BaseException) else "ok").inc()
    failures: list[FhirFetchError] = []
    for (template, _query), result in zip(to_fetch, results, strict=True):
        if isinstance(result, FhirFetchError):
            if template.required:
                failures.append(result)
            else:
                resolved.resources[template.key] = []
                resolved.origin[template.key] = "fetch-failed"
        elif isinstance(result, BaseException):
            raise result
        else:
            resolved.resources[template.key] = result
            resolved.origin[template.key] = "fetched"
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise PreconditionFailed("; ".join(f.message for f in failures), expression=[f.query for f in failures])
