from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(feedback_db_path=tmp_path / "feedback.sqlite3")


@pytest.fixture
def store() -> Iterator[SqliteFeedbackStore]:
    s = SqliteFeedbackStore(":memory:")
    yield s
    s.close()


@pytest.fixture
def client(settings: Settings, store: SqliteFeedbackStore) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store=store)) as c:
        yield c
