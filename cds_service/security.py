"""Verification of the CDS Client's JWT (CDS Hooks 2.0 §Trusting CDS Clients).

Every check is explicit, and any failure is a 401 with no detail for the caller; the reason is
logged for the operator (never the token). Rules:

- ``Authorization: Bearer <JWT>``; header ``alg`` ES384 or RS384 only (never ``none`` or HMAC),
  ``typ`` JWT, ``kid`` present;
- ``iss`` in the allowlist; a ``jku`` header must be one of that issuer's allowlisted URLs;
- the key: pinned keys configured for the issuer (inline or from a file), else the JWKS at the
  allowlisted ``jku``, cached and fetched again when an unknown ``kid`` appears (key rotation);
- ``aud`` (string or array) contains the URL called (the public base URL behind a proxy);
- ``exp``, ``iat`` and ``jti`` required; ``exp``, ``iat``, ``nbf`` checked with a small leeway; a
  token may not live longer than the configured maximum;
- ``jti`` not seen before from that issuer while the token is valid (replay cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK, PyJWKSet
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import Unauthorized, send_error

log = logging.getLogger("cds_service.security")

ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384"})


class TrustedIssuer(BaseModel):
    """One CDS Client this service trusts: its ``iss``, allowlisted ``jku`` URLs, and/or pinned keys."""

    model_config = ConfigDict(extra="forbid")

    iss: str = Field(min_length=1)
    jku: list[str] = Field(default_factory=list)
    jwks: dict[str, Any] | None = None
    jwks_file: Path | None = None

    @model_validator(mode="after")
    def _has_keys(self) -> TrustedIssuer:
        if not self.jku and self.jwks is None and self.jwks_file is None:
            raise ValueError(f"trusted issuer {self.iss!r} needs jku URLs, jwks or jwks_file")
        return self

    def pinned_keys(self) -> dict[str, Any] | None:
        if self.jwks is not None:
            return self.jwks
        if self.jwks_file is not None:
            loaded: dict[str, Any] = json.loads(self.jwks_file.read_text(encoding="utf-8"))
            return loaded
        return None


class Rejected(Unauthorized):
    """A JWT failed a rule; ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__("Unauthorized")
        self.reason = reason


@dataclass
class _FetchedKeys:
    keys: dict[str, PyJWK]
    fetched_at: float


class JwksCache:
    """Keys by ``kid`` per source: pinned sets parsed once, ``jku`` sets fetched, cached and refreshed."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        ttl: float,
        min_refetch: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._min_refetch = min_refetch
        self._timeout = timeout
        self._clock = clock
        self._fetched: dict[str, _FetchedKeys] = {}
        self._lock = asyncio.Lock()

    async def from_url(self, url: str, kid: str) -> PyJWK | None:
        cached = self._fetched.get(url)
        now = self._clock()
        stale = cached is None or now - cached.fetched_at > self._ttl
        unknown = cached is not None and kid not in cached.keys and now - cached.fetched_at >= self._min_refetch
        if stale or unknown:
            async with self._lock:
                cached = self._fetched.get(url)
                if (
                    cached is None
                    or now - cached.fetched_at > self._ttl
                    or (kid not in cached.keys and now - cached.fetched_at >= self._min_refetch)
                ):
                    cached = await self._fetch(url)
        return cached.keys.get(kid) if cached else None

    async def _fetch(self, url: str) -> _FetchedKeys | None:
        try:
            response = await self._client.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = _key_set(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("jwks fetch failed url=%s error=%s", url, type(exc).__name__)
            return self._fetched.get(url)
        fetched = _FetchedKeys(keys, self._clock())
        self._fetched[url] = fetched
        return fetched


def _key_set(document: Any) -> dict[str, PyJWK]:
    keys = PyJWKSet.from_dict(document).keys
    return {k.key_id: k for k in keys if k.key_id}


class ReplayCache:
    """``(iss, jti)`` pairs seen, each kept until its token expires. Thread-safe, bounded."""

    def __init__(self, max_entries: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires: float) -> bool:
        """True the first time a token id is presented; False for a replay (or when full)."""
        now = self._clock()
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max:
                    return False  # refuse rather than forget ids that are still valid
            key = (iss, jti)
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires
            return True


class SeenTokenIds(Protocol):
    """Where JWT ids are remembered: ``ReplayCache`` in process, or the shared feedback store."""

    def first_use(self, iss: str, jti: str, expires: float) -> bool: ...


class ClientAuthenticator:
    """Checks one request's bearer JWT against the trusted issuers."""

    def __init__(
        self,
        issuers: list[TrustedIssuer],
        jwks: JwksCache,
        replay: SeenTokenIds,
        *,
        leeway: float,
        max_lifetime: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {issuer.iss: issuer for issuer in issuers}
        self._pinned = {
            issuer.iss: _key_set(pinned) for issuer in issuers if (pinned := issuer.pinned_keys()) is not None
        }
        self._jwks = jwks
        self._replay = replay
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._clock = clock

    async def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """The verified claims, or ``Rejected``."""
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Rejected("not a JWT") from None
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if alg not in ALLOWED_ALGORITHMS:
            raise Rejected(f"algorithm {alg!r} not allowed")
        if not isinstance(kid, str) or not kid:
            raise Rejected("no kid")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise Rejected("typ is not JWT")
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Rejected("untrusted iss")
        key = await self._key(issuer, header, kid)
        if key.algorithm_name != alg:
            raise Rejected("key does not match alg")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "jti", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Rejected(type(exc).__name__) from None
        now = self._clock()
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        if not all(isinstance(v, int | float) for v in (exp, iat)) or not isinstance(jti, str) or not jti:
            raise Rejected("malformed exp, iat or jti")
        if iat > now + self._leeway:
            raise Rejected("iat in the future")
        if exp - iat > self._max_lifetime:
            raise Rejected("token lifetime too long")
        if not self._replay.first_use(issuer.iss, jti, exp + self._leeway):
            raise Rejected("jti replayed")
        return claims

    async def _key(self, issuer: TrustedIssuer, header: dict[str, Any], kid: str) -> PyJWK:
        jku = header.get("jku")
        if jku is not None and jku not in issuer.jku:
            raise Rejected("jku not allowlisted")
        pinned = self._pinned.get(issuer.iss)
        if pinned is not None:
            key = pinned.get(kid)
        else:
            url = jku if isinstance(jku, str) else (issuer.jku[0] if len(issuer.jku) == 1 else None)
            if url is None:
                raise Rejected("no jku to fetch keys from")
            key = await self._jwks.from_url(url, kid)
        if key is None:
            raise Rejected("unknown kid")
        return key


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Rejected("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected("not a bearer token")
    return token.strip()


class ClientAuthMiddleware:
    """Requires a verified client JWT on every route but ``/health`` and CORS preflights.

    The authenticator lives on ``app.state.runtime`` (built at start-up with the shared HTTP client);
    when it is None, authentication is off (the development default).
    """

    def __init__(self, app: ASGIApp, *, public_base_url: str | None, open_paths: frozenset[str]) -> None:
        self.app = app
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = getattr(scope.get("app").state, "runtime", None) if scope.get("app") else None  # type: ignore[union-attr]
        authenticator: ClientAuthenticator | None = getattr(runtime, "authenticator", None)
        if (
            scope["type"] != "http"
            or authenticator is None
            or scope.get("method") == "OPTIONS"
            or scope.get("path") in self.open_paths
        ):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            await authenticator.verify(headers.get("authorization"), self._url_called(scope, headers))
        except Rejected as rejected:
            log.info("jwt rejected path=%s reason=%s", scope.get("path"), rejected.reason)
            await send_error(send, rejected, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    def _url_called(self, scope: Scope, headers: dict[str, str]) -> str:
        path = str(scope.get("root_path", "")) + str(scope["path"])
        if self.public_base_url:
            return self.public_base_url + path
        host = headers.get("host") or "{}:{}".format(*scope.get("server", ("localhost", 80)))
        return f"{scope.get('scheme', 'http')}://{host}{path!s}"
