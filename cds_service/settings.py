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


class Settings(BaseSettings):
    """Configuration of one service instance."""

    model_config = SettingsConfigDict(env_prefix="CDS_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Largest request body accepted, in bytes. EHR prefetch bundles can be large; anything past this
    # gets 413 before it is parsed.
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)

    # Origins allowed by CORS. "*" lets the public CDS Hooks sandbox call a local instance.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    feedback_db_path: Path = Path("cds-feedback.sqlite3")

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

    def now(self) -> datetime:
        """The current time, or the fixed clock when one is set."""
        if self.clock is None:
            return datetime.now(UTC)
        return self.clock if self.clock.tzinfo else self.clock.replace(tzinfo=UTC)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
