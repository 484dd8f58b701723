"""Service settings, read from environment variables prefixed ``CDS_``.

Every field here is listed in the README. Defaults are the development profile: bound to
127.0.0.1, open CORS for the public CDS Hooks sandbox, feedback in a local SQLite file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .limits import ShapeLimits
from .security import TrustedIssuer


class ConfigurationError(RuntimeError):
    """Settings the service refuses to start with."""


class Settings(BaseSettings):
    """Configuration of one service instance."""

    model_config = SettingsConfigDict(env_prefix="CDS_", env_file=None, extra="ignore")

    # "development" (default): bound to 127.0.0.1, unauthenticated calls allowed with a warning.
    # "production": client JWTs always verified; refuses to start without a trusted issuer.
    profile: Literal["development", "production"] = "development"
    # Verify client JWTs in the development profile too (production always does).
    require_client_auth: bool = False
    # JSON list of {"iss", "jku": [...], "jwks": {...} | "jwks_file": "path"} (CDS Hooks allowlist).
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    # The URL clients call when the service sits behind a proxy; JWT "aud" must equal it + path.
    public_base_url: str | None = None
    jwt_leeway_seconds: float = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_seconds: float = Field(default=3600, gt=0)
    jwks_cache_seconds: float = Field(default=3600, gt=0)
    jwks_min_refetch_seconds: float = Field(default=10, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Largest request body accepted, in bytes. EHR prefetch bundles can be large; anything past this
    # gets 413 before it is parsed.
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)

    # Origins allowed by CORS. "*" lets the public CDS Hooks sandbox call a local instance.
    # Shape limits checked after parsing (4xx with an OperationOutcome beyond them).
    max_json_depth: int = Field(default=64, ge=8, le=500)
    max_string_length: int = Field(default=100_000, ge=1000)
    max_draft_orders: int = Field(default=100, ge=1)
    max_prefetch_resources: int = Field(default=5000, ge=1)

    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    feedback_db_path: Path = Path("cds-feedback.sqlite3")
    # Overrides feedback_db_path: sqlite:///path or postgresql://user:pass@host/db (several instances).
    database_url: str | None = None
    # Where client-JWT ids are remembered against replay: "memory" (one process) or "database" (shared by
    # every worker and instance using the store). Default: memory for one worker, database for several.
    replay_cache: Literal["memory", "database"] | None = None

    # FHIR server access when prefetch is missing or failed.
    fhir_timeout_seconds: float = Field(default=2.0, gt=0)
    # Total time all fetches of one hook call may take together (they run concurrently).
    fhir_budget_seconds: float = Field(default=0.4, gt=0)
    fhir_max_pages: int = Field(default=5, ge=1)
    fhir_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # The spec lets a service use fhirServer only with fhirAuthorization; the sandbox sends fhirServer
    # alone. True (development) reads such an open server without a token; set False in production.
    fhir_fetch_without_token: bool = True

    # A fixed "now" (ISO 8601) for demonstrations and reproducible tests; unset means the system clock.
    clock: datetime | None = None

    # A fracture recorded or with onset within this many weeks counts as "new".
    new_fracture_weeks: int = Field(default=12, ge=1)

    # Argonaut PAMA: the qCDSM identifier (G-code) reported with each rating.
    qcdsm_id: str = "unregistered-qcdsm"
    # How a better study replaces a draft: one "update" of the draft (Argonaut, sandbox) or
    # "delete-create" (delete by resourceId, then create) for EHRs that prefer it.
    suggestion_mode: Literal["update", "delete-create"] = "update"
    # Base URI of the small code systems this service defines (override reasons, ACR category
    # translations, topic). Point it at a URL your organisation controls.
    code_system_base: str = "https://cds.example.org/fhir/CodeSystem"

    @property
    def auth_enabled(self) -> bool:
        """Whether client JWTs are verified."""
        return self.profile == "production" or self.require_client_auth

    @property
    def tokenless_fetch(self) -> bool:
        """Whether an open fhirServer may be read without fhirAuthorization (never in production)."""
        return self.fhir_fetch_without_token and self.profile == "development"

    def check_startable(self) -> None:
        """Raise ``ConfigurationError`` for settings the service must not start with."""
        if self.auth_enabled and not self.trusted_issuers:
            raise ConfigurationError(
                f"client authentication is on ({self.profile} profile) but no issuer is trusted: "
                "set CDS_TRUSTED_ISSUERS (see the README's security section)"
            )
        for issuer in self.trusted_issuers:
            if issuer.jwks_file is not None and not issuer.jwks_file.is_file():
                raise ConfigurationError(f"trusted issuer {issuer.iss!r}: no JWKS file at {issuer.jwks_file}")

    def store_url(self) -> str:
        """The feedback store's database URL."""
        return self.database_url or f"sqlite:///{self.feedback_db_path}"

    def shape_limits(self) -> ShapeLimits:
        return ShapeLimits(
            max_depth=self.max_json_depth,
            max_string_length=self.max_string_length,
            max_draft_orders=self.max_draft_orders,
            max_prefetch_resources=self.max_prefetch_resources,
        )

    def now(self) -> datetime:
        """The current time, or the fixed clock when one is set."""
        if self.clock is None:
            return datetime.now(UTC)
        return self.clock if self.clock.tzinfo else self.clock.replace(tzinfo=UTC)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
