"""Every fixture scenario through the app in process: the expected outcome, and a golden file of the
full response so unintended changes to cards show up in review.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 python -m pytest
tests/test_fixture_scenarios.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.ehr import FireResult, find_service, hook_request
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.scenarios import Scenario, check_outcome, load_all
from cds_service.settings import Settings
from tests.records import TODAY

ROOT = Path(__file__).parents[1]
GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = load_all(ROOT / "fixtures", TODAY)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def client() -> Any:
    settings = Settings(feedback_db_path=":memory:", clock=f"{TODAY.isoformat()}T12:00:00Z")  # type: ignore[arg-type]
    store = SqliteFeedbackStore(":memory:")
    with TestClient(create_app(settings, store=store)) as c:
        yield c
    store.close()


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """The response with its fresh uuids replaced by stable placeholders, in order of appearance."""
    seen: dict[str, str] = {}

    def stable(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"uuid-{len(seen) + 1}")

    result: dict[str, Any] = json.loads(UUID.sub(stable, json.dumps(body)))
    return result


def test_there_are_scenarios_for_every_variant_and_situation() -> None:
    names = {s.name for s in SCENARIOS}
    assert {f"v{n}" for n in range(1, 10)} <= {name.split("-")[0] for name in names}
    assert len(names) >= 20


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_outcome_and_golden_file(client: TestClient, scenario: Scenario) -> None:
    service = find_service(client.get("/cds-services").json(), scenario.hook)
    body = hook_request(scenario, service, mode="prefetch")
    response = client.post(f"/cds-services/{service['id']}", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert check_outcome(scenario, answer) == []

    golden = GOLDEN / f"{scenario.name}.json"
    actual = normalized(answer)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}; run with UPDATE_GOLDEN=1 and review it"
    assert actual == json.loads(golden.read_text(encoding="utf-8"))


def test_a_failed_expectation_is_reported() -> None:
    scenario = next(s for s in SCENARIOS if s.name == "v1-icd-cpt")
    problems = check_outcome(scenario, {"cards": []})
    assert any(p.startswith("cards: expected") for p in problems)
    assert any(p.startswith("ratings: expected") for p in problems)
    assert not FireResult(scenario, "svc", "prefetch", 200, {"cards": []}, 1.0, problems).ok
