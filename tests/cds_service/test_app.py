"""The HTTP surface: discovery, service calls, feedback, CORS and every error path."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.settings import Settings
from tests import factories as f
from tests.spec_rules import assert_no_empty

SELECT = "/cds-services/vcf-imaging-order-select"
SIGN = "/cds-services/vcf-imaging-order-sign"
ALLOWED_TOKENS = {"{{context.patientId}}", "{{context.userId}}", "{{context.encounterId}}"}


def assert_outcome(response: Any, status: int, pattern: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    assert re.search(pattern, issue["diagnostics"]), issue["diagnostics"]
    assert "Traceback" not in response.text
    return body


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_lists_both_order_hooks_with_distinct_ids(client: TestClient) -> None:
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"] for s in services} == {"order-select", "order-sign"}
    assert len({s["id"] for s in services}) == 2
    for s in services:
        assert s["title"] and s["description"] and s["usageRequirements"]
        assert set(s["prefetch"]) == {"patient", "conditions", "procedures", "observations", "allergies"}


def test_prefetch_templates_stay_in_the_restricted_subset(client: TestClient) -> None:
    """Spec: templates use only allowed tokens, instance reads and type-level token searches."""
    for service in client.get("/cds-services").json()["services"]:
        for query in service["prefetch"].values():
            assert set(re.findall(r"\{\{[^}]+\}\}", query)) <= ALLOWED_TOKENS
            path, _, params = query.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", path)
            for param in filter(None, params.split("&")):
                name, _, _value = param.partition("=")
                assert name in {"patient", "category", "code", "_count", "_sort"}


# ------------------------------------------------------------------------------------------- service call


def test_sandbox_pama_shaped_call_is_accepted(client: TestClient) -> None:
    """The sandbox sends no Bundle.type, no encounterId and intent plan."""
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    assert "cards" in response.json()


def test_sandbox_initial_call_with_empty_coding_is_not_an_error(client: TestClient) -> None:
    """Product spec §4: the first call has code {"coding": [{}]}; 200, no card, no rating."""
    body = f.sandbox_order_select([f.service_request(codings=[{}])], prefetch=f.empty_prefetch())
    response = client.post(SELECT, json=body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_epic_shaped_call_with_operation_outcome_for_one_key_is_accepted(client: TestClient) -> None:
    """Epic: Bundle.type collection, encounterId, fhirAuthorization; a failed key is refetched."""
    import httpx
    import respx

    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = f.epic_order_sign(procedures=outcome)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://ehr.example.org/fhir/Procedure", params={"patient": "p1"}).mock(
            return_value=httpx.Response(200, json=f.bundle([], bundle_type="searchset"))
        )
        response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.text
    assert route.calls.last.request.headers["Authorization"] == "Bearer SECRET-TOKEN-123"


def test_issued_cards_are_recorded_for_feedback(client: TestClient, store: SqliteFeedbackStore) -> None:
    """Issue 4: card uuid, hookInstance, variant, order code and suggestion uuids are stored."""
    from tests import records

    prefetch = f.empty_prefetch()
    prefetch["conditions"] = f.bundle(records.record_for_variant(1))
    bone_scan = f.service_request(codings=[{"system": f.CPT, "code": "78306"}])
    body = f.sandbox_order_select([bone_scan], prefetch=prefetch)
    response = client.post(SELECT, json=body)
    (card,) = response.json()["cards"]
    client.app.state.runtime.issued.flush()  # written behind the response
    (issued,) = store.issued()
    assert issued.card_uuid == card["uuid"]
    assert issued.hook_instance == body["hookInstance"]
    assert (issued.variant, issued.card_kind, issued.indicator) == (1, "lower-rated", "warning")
    assert issued.order_code == "http://www.ama-assn.org/go/cpt|78306"
    assert issued.suggestion_uuids == tuple(s["uuid"] for s in card["suggestions"])
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            }
        ]
    }
    assert client.post(f"{SELECT}/feedback", json=feedback).status_code == 200
    assert store.feedback()[0].known_card is True


def test_unknown_service_is_404(client: TestClient) -> None:
    assert_outcome(client.post("/cds-services/nope", json=f.sandbox_order_select()), 404, "No CDS service")


def test_unknown_route_is_404_operation_outcome(client: TestClient) -> None:
    assert_outcome(client.get("/nothing-here"), 404, "No route")


def test_hook_not_matching_service_is_400(client: TestClient) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    assert_outcome(client.post(SIGN, json=body), 400, "answers the 'order-sign' hook")


def test_invalid_json_is_400_not_422(client: TestClient) -> None:
    response = client.post(SELECT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_outcome(response, 400, "not valid JSON")


def test_empty_body_is_400(client: TestClient) -> None:
    assert_outcome(client.post(SELECT, content=b""), 400, "empty")


def test_json_that_is_not_an_object_is_400(client: TestClient) -> None:
    assert_outcome(client.post(SELECT, json=[1, 2]), 400, "JSON object")


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda b: b.pop("hookInstance"), r"hookInstance: Field required"),
        (lambda b: b.pop("context"), r"context: Field required"),
        (lambda b: b["context"].pop("patientId"), r"patientId"),
        (lambda b: b["context"].pop("userId"), r"userId"),
        (lambda b: b["context"].pop("selections"), r"selections"),
        (lambda b: b["context"].update(selections=[]), r"selections"),
        (lambda b: b["context"].update(selections=["ServiceRequest/other"]), r"names no entry of draftOrders"),
        (lambda b: b["context"].update(selections=["not a reference"]), r"not of the form Type/id"),
        (lambda b: b["context"].update(draftOrders={"resourceType": "ServiceRequest"}), r"draftOrders"),
        (lambda b: b["context"].update(draftOrders={"resourceType": "Bundle", "entry": [{"x": 1}]}), r"resource"),
        (lambda b: b.update(fhirServer="ftp://x"), r"fhirServer"),
        (
            lambda b: (
                b.pop("fhirServer"),
                b.update(
                    fhirAuthorization={
                        "access_token": "t",
                        "token_type": "Bearer",
                        "expires_in": 1,
                        "scope": "s",
                        "subject": "c",
                    }
                ),
            ),
            r"fhirServer is required",
        ),
        (
            lambda b: b.update(
                fhirAuthorization={
                    "access_token": "t",
                    "token_type": "MAC",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "c",
                }
            ),
            r"token_type",
        ),
    ],
)
def test_requests_that_break_the_spec_are_400_naming_the_problem(client: TestClient, mutate: Any, pattern: str) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    mutate(body)
    assert_outcome(client.post(SELECT, json=body), 400, pattern)


def test_bad_request_never_echoes_the_token(client: TestClient) -> None:
    body = f.epic_order_sign()
    body["fhirAuthorization"]["expires_in"] = "SECRET-TOKEN-123"
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert "SECRET-TOKEN-123" not in response.text


def test_missing_prefetch_without_fhir_server_is_412(client: TestClient) -> None:
    body = f.sandbox_order_select(fhir_server=None)
    body_outcome = assert_outcome(client.post(SELECT, json=body), 412, "conditions")
    assert "prefetch.conditions" in body_outcome["issue"][0]["expression"]


def test_body_over_the_limit_is_413(tmp_path: Any, store: SqliteFeedbackStore) -> None:
    settings = Settings(feedback_db_path=tmp_path / "f.db", max_body_bytes=2048)
    with TestClient(create_app(settings, store=store)) as small:
        body = f.sandbox_order_select(prefetch=f.empty_prefetch())
        body["padding"] = "x" * 4096
        assert_outcome(small.post(SELECT, json=body), 413, "exceeds the limit")


def test_body_over_the_limit_without_content_length_is_413(tmp_path: Any, store: SqliteFeedbackStore) -> None:
    settings = Settings(feedback_db_path=tmp_path / "f.db", max_body_bytes=2048)
    with TestClient(create_app(settings, store=store)) as small:

        def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1024

        response = small.post(SELECT, content=chunks(), headers={"Content-Type": "application/json"})
        assert_outcome(response, 413, "exceeds the limit")


def test_method_not_allowed_is_an_operation_outcome(client: TestClient) -> None:
    response = client.put(SELECT, json={})
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


# ----------------------------------------------------------------------------------------------- feedback


def feedback_body(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": "9c7ef1a2-0000-4000-8000-000000000001",
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "https://cds.example.org/fhir/CodeSystem/override-reason",
                "code": "patient-specific",
                "display": "Patient-specific factors",
            },
            "userComment": "discussed with radiology",
        },
        "outcomeTimestamp": "2026-11-20T10:05:31Z",
    }
    item.update(overrides)
    return {"feedback": [item]}


def test_feedback_is_stored_and_answered_200(client: TestClient, store: SqliteFeedbackStore) -> None:
    response = client.post(f"{SELECT}/feedback", json=feedback_body())
    assert response.status_code == 200
    stored = store.feedback()
    assert len(stored) == 1
    assert stored[0].outcome == "overridden" and stored[0].override_reason_code == "patient-specific"
    assert stored[0].service_id == "vcf-imaging-order-select"


def test_accepted_feedback_keeps_the_suggestion_ids(client: TestClient, store: SqliteFeedbackStore) -> None:
    body = feedback_body(outcome="accepted", acceptedSuggestions=[{"id": "s-1"}])
    del body["feedback"][0]["overrideReason"]
    assert client.post(f"{SIGN}/feedback", json=body).status_code == 200
    assert store.feedback()[0].accepted_suggestions == ("s-1",)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ({"feedback": []}, "feedback"),
        ({"card": "x"}, "feedback: Field required"),
        (feedback_body(outcome="maybe"), "outcome"),
        (feedback_body(outcome="accepted"), "acceptedSuggestions is required"),
        (feedback_body(outcomeTimestamp="yesterday"), "outcomeTimestamp"),
        (feedback_body(outcomeTimestamp="2026-11-20T10:05:31"), "UTC offset"),
    ],
)
def test_bad_feedback_is_400(client: TestClient, store: SqliteFeedbackStore, body: Any, pattern: str) -> None:
    assert_outcome(client.post(f"{SELECT}/feedback", json=body), 400, pattern)
    assert store.feedback() == []


def test_feedback_for_unknown_service_is_404(client: TestClient) -> None:
    assert_outcome(client.post("/cds-services/nope/feedback", json=feedback_body()), 404, "No CDS service")


# ------------------------------------------------------------------------------------------- CORS, health


@pytest.mark.parametrize("path", ["/cds-services", SELECT, f"{SELECT}/feedback", SIGN, f"{SIGN}/feedback", "/health"])
def test_cors_preflight_on_every_route(client: TestClient, path: str) -> None:
    response = client.options(
        path,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_private_network_preflight_from_the_public_sandbox(client: TestClient) -> None:
    response = client.options(
        "/cds-services",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-private-network"] == "true"


def test_cors_headers_on_actual_responses_including_errors(client: TestClient) -> None:
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    assert client.get("/cds-services", headers=origin).headers["access-control-allow-origin"] == "*"
    bad = client.post(SELECT, content=b"nope", headers=origin)
    assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == "*"


def test_configured_origins_restrict_cors(tmp_path: Any, store: SqliteFeedbackStore) -> None:
    settings = Settings(feedback_db_path=tmp_path / "f.db", cors_origins=["https://ehr.example.org"])
    with TestClient(create_app(settings, store=store)) as c:
        ok = c.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
        other = c.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "https://ehr.example.org"
    assert "access-control-allow-origin" not in other.headers


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_response_has_no_null_or_empty_optional_fields(client: TestClient) -> None:
    body = f.sandbox_order_select(prefetch=f.empty_prefetch())
    assert_no_empty(client.post(SELECT, json=body).json())


def test_start_up_takes_the_garbage_collector_off_the_request_path(client: TestClient) -> None:
    """Issue 7: keep the request path lean; what start-up loaded is frozen, young collections are rare."""
    import gc

    from cds_service.app import GC_THRESHOLDS

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLDS


def test_openapi_describes_the_hook_call_with_its_answers(client: TestClient) -> None:
    """The hook route reads its body itself; its operation still names the request, the cards it
    answers with and the OperationOutcome errors (schemathesis, in test_fuzz, loads the document)."""
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/cds-services/{service_id}"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/HookRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/HookResponse")
    assert {"400", "404", "412", "413"} <= set(operation["responses"])
    assert operation["parameters"][0]["schema"]["enum"] == ["vcf-imaging-order-select", "vcf-imaging-order-sign"]
    assert "Card" in document["components"]["schemas"]
