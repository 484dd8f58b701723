from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.security import TrustedIssuer
from cds_service.settings import Settings
from tests.jwt_helpers import ISS, JKU, KeyPair, SigningClient


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (CI must have one: .ci/run installs it)."""
    from tests.postgres import PostgresUnavailable, temporary_server

    try:
        with temporary_server() as url:
            yield url
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests must run in CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A fresh, empty database for one test."""
    from tests.postgres import fresh_database

    return fresh_database(postgres_admin_url, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The feedback store's database on each backend: an SQLite file, and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(feedback_db_path=tmp_path / "feedback.sqlite3")


@pytest.fixture
def store() -> Iterator[SqliteFeedbackStore]:
    s = SqliteFeedbackStore(":memory:")
    yield s
    s.close()


@pytest.fixture(params=["open", "authenticated"])
def client(request: pytest.FixtureRequest, tmp_path: Path, store: SqliteFeedbackStore) -> Iterator[TestClient]:
    """The protocol tests run twice: development (no client auth) and with client JWTs verified."""
    if request.param == "open":
        with TestClient(create_app(Settings(feedback_db_path=tmp_path / "f.db"), store=store)) as c:
            yield c
        return
    key = KeyPair("ES384")
    settings = Settings(
        feedback_db_path=tmp_path / "f.db",
        require_client_auth=True,
        trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU], jwks=key.jwks())],
    )
    with SigningClient(create_app(settings, store=store), key) as c:
        yield c
