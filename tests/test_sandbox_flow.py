"""The CDS Hooks sandbox's PAMA Imaging flow, as docs/sandbox.md describes it (product-spec §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import respx
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.fhir_server import create_fhir_app
from cds_service.fhir_store import FhirStore
from cds_service.prefetch import render_template
from cds_service.scenarios import load_all, ratings_of
from cds_service.settings import Settings
from tests import factories as f
from tests.records import TODAY

ROOT = Path(__file__).parents[1]
FHIR = "http://127.0.0.1:8081"
SCENARIOS = {s.name: s for s in load_all(ROOT / "fixtures", TODAY)}


def sandbox_call(client: TestClient, patient: str, cpt: str, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the sandbox sends: its own prefetch (minus keys it failed to fill), fhirServer, no token."""
    store = FhirStore(store_resources())
    service = next(s for s in client.get("/cds-services").json()["services"] if s["hook"] == "order-select")
    draft = f.service_request(
        codings=[{"system": f.CPT, "code": cpt}] if cpt else [{}],
        patient=patient,
        reasons=[{"system": f.SNOMED, "code": "279039007", "display": "Low back pain"}],
    )
    body = f.sandbox_order_select([draft], fhir_server=FHIR)
    body["context"]["patientId"] = patient
    body["prefetch"] = {}
    for key, template in service["prefetch"].items():
        query = render_template(template, body["context"])
        if query and key not in skip:
            body["prefetch"][key] = store.query(query)
    fhir = TestClient(create_fhir_app(store_resources()))

    def open_fhir_server(request: httpx.Request) -> httpx.Response:
        # respx stands in for the network; the answer comes from the real fixture FHIR server app.
        assert "authorization" not in request.headers  # the sandbox grants no token
        answer = fhir.get(request.url.raw_path.decode())
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    with respx.mock(assert_all_called=False) as mock:
        fetched = mock.route(host="127.0.0.1", port=8081).mock(side_effect=open_fhir_server)
        response = client.post(f"/cds-services/{service['id']}", json=body)
    assert response.status_code == 200, response.text
    assert fetched.call_count == len(skip)
    result: dict[str, Any] = response.json()
    return result


def store_resources() -> list[dict[str, Any]]:
    return [r for s in SCENARIOS.values() for r in s.record()]


def client_with_open_fhir_server() -> TestClient:
    settings = Settings(feedback_db_path=":memory:", clock=f"{TODAY.isoformat()}T12:00:00Z")  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def test_first_call_with_an_empty_coding_is_quietly_unrated() -> None:
    with client_with_open_fhir_server() as client:
        assert sandbox_call(client, "v1-icd-cpt", "") == {"cards": []}


def test_v1_patient_ct_with_and_without_contrast_as_the_guide_says() -> None:
    with client_with_open_fhir_server() as client:
        answer = sandbox_call(client, "v1-icd-cpt", "72133")
    assert ratings_of({"systemActions": answer["extension"]["systemActions"]}) == {
        "ServiceRequest/example-request-id": "not-appropriate"
    }
    (card,) = answer["cards"]
    assert card["indicator"] == "warning"
    assert card["summary"] == (
        "CT lumbar spine w/o+w contrast is 'Usually not appropriate' (ACR VCF variant 1); "
        "consider MRI lumbar spine w/o contrast"
    )
    first, second = card["suggestions"]
    assert [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in (first, second)] == ["72148", "72131"]
    for suggestion in (first, second):
        (action,) = suggestion["actions"]
        # The sandbox applies only updates that carry a pama-rating extension, and reads coding[0].
        assert action["type"] == "update"
        assert action["resource"]["extension"][0]["url"] == "http://fhir.org/argonaut/Extension/pama-rating"
        assert action["resource"]["reasonCode"][0]["coding"][0]["code"] == "279039007"


def test_a_key_the_sandbox_could_not_fill_is_read_from_the_open_fhir_server() -> None:
    """The sandbox omits keys whose fetch failed; the service reads them without a token (development)."""
    with client_with_open_fhir_server() as client:
        answer = sandbox_call(client, "pacemaker", "72148", skip=("conditions",))
    (card,) = answer["cards"]
    assert "MRI contraindicated" in card["summary"]  # the pacemaker came from the fetched Conditions
