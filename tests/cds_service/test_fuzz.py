"""Hostile input: limits answered with a 4xx OperationOutcome, and fuzzing that finds no 5xx.

Two fuzzers: schemathesis generates bodies from (and around) our own OpenAPI document; hypothesis
sends arbitrary JSON to every route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.settings import Settings
from tests import factories as f

SELECT = "/cds-services/vcf-imaging-order-select"
APP = create_app(
    Settings(feedback_db_path=":memory:", fhir_fetch_without_token=False), store=SqliteFeedbackStore(":memory:")
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error(case: Any) -> None:
    response = case.call()  # schemathesis runs the app's lifespan itself
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON, path=st.sampled_from([SELECT, f"{SELECT}/feedback", "/cds-services/vcf-imaging-order-sign"]))
def test_arbitrary_json_never_gets_a_5xx(client: TestClient, body: Any, path: str) -> None:
    response = client.post(path, content=json.dumps(body))
    assert response.status_code < 500


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    mutation=st.dictionaries(
        st.sampled_from(["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization"]),
        JSON,
        max_size=3,
    )
)
def test_mutated_valid_requests_never_get_a_5xx(client: TestClient, mutation: dict[str, Any]) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch(), fhir_server=None)
    body.update(mutation)
    response = client.post(SELECT, json=body)
    assert response.status_code < 500


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    order=st.dictionaries(
        st.sampled_from(["code", "reasonCode", "subject", "extension", "status", "id"]), JSON, max_size=4
    )
)
def test_arbitrary_draft_orders_never_get_a_5xx(client: TestClient, order: dict[str, Any]) -> None:
    draft = {**f.service_request("x"), **order, "resourceType": "ServiceRequest", "id": "x"}
    body = f.sandbox_order_select([draft], selections=["ServiceRequest/x"], prefetch=f.empty_prefetch())
    response = client.post(SELECT, json=body)
    assert response.status_code < 500


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(resources=st.lists(st.dictionaries(st.text(max_size=10), JSON, max_size=5), max_size=5))
def test_arbitrary_prefetch_resources_never_get_a_5xx(client: TestClient, resources: list[dict[str, Any]]) -> None:
    prefetch = f.empty_prefetch()
    prefetch["conditions"] = f.bundle([{**r, "resourceType": "Condition"} for r in resources])
    prefetch["observations"] = f.bundle([{**r, "resourceType": "Observation"} for r in resources])
    response = client.post(SELECT, json=f.sandbox_order_select(prefetch=prefetch, fhir_server=None))
    assert response.status_code == 200


# --------------------------------------------------------------------------------------------- the limits


def outcome(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and text in body["issue"][0]["diagnostics"]


def test_nesting_beyond_the_parser_is_400_not_500(client: TestClient) -> None:
    outcome(client.post(SELECT, content=b"[" * 200_000 + b"]" * 200_000), 400, "nested too deeply")


def test_nesting_beyond_the_limit_is_400(client: TestClient) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    deep: Any = "x"
    for _ in range(80):
        deep = {"a": deep}
    body["context"]["extra"] = deep
    outcome(client.post(SELECT, json=body), 400, "CDS_MAX_JSON_DEPTH")


def test_overlong_string_is_400(client: TestClient) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    body["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "x" * 200_000}]
    outcome(client.post(SELECT, json=body), 400, "CDS_MAX_STRING_LENGTH")


def test_too_many_draft_orders_is_413(client: TestClient) -> None:
    orders = [f.service_request(f"o{i}") for i in range(101)]
    outcome(
        client.post(SELECT, json=f.sandbox_order_select(orders, prefetch=f.empty_prefetch())),
        413,
        "CDS_MAX_DRAFT_ORDERS",
    )


def test_too_many_resources_in_a_prefetch_key_is_413(tmp_path: Path) -> None:
    settings_ = Settings(feedback_db_path=tmp_path / "f.db", max_prefetch_resources=10)
    with TestClient(create_app(settings_, store=SqliteFeedbackStore(":memory:"))) as small:
        prefetch = f.empty_prefetch()
        prefetch["conditions"] = f.bundle([f.condition(f"c{i}", "M54.50") for i in range(11)])
        outcome(small.post(SELECT, json=f.sandbox_order_select(prefetch=prefetch)), 413, "CDS_MAX_PREFETCH_RESOURCES")
