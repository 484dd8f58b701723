"""Privacy: no request body, token, JWT or patient identifier reaches the logs, at any level."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.feedback_store import SqliteFeedbackStore
from cds_service.security import TrustedIssuer
from cds_service.settings import Settings
from tests import factories as f
from tests.jwt_helpers import ISS, JKU, KeyPair, token

PATIENT = "PATIENT-SENTINEL-4711"
ACCESS_TOKEN = "ACCESS-TOKEN-SENTINEL-0815"
BODY_TEXT = "BODY-SENTINEL-free-text"
FHIR = "https://ehr.example.org/fhir"
SELECT = "http://testserver/cds-services/vcf-imaging-order-select"


def test_no_sentinel_reaches_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = KeyPair("ES384")
    settings = Settings(
        feedback_db_path=tmp_path / "f.db",
        require_client_auth=True,
        trusted_issuers=[TrustedIssuer(iss=ISS, jku=[JKU], jwks=key.jwks())],
    )
    draft = f.service_request(
        patient=PATIENT, reasons=[{"system": f.SNOMED, "code": "279039007", "display": BODY_TEXT}]
    )
    body = f.sandbox_order_select([draft], fhir_server=FHIR)
    body["context"]["patientId"] = PATIENT
    body["fhirAuthorization"] = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "patient/*.read",
        "subject": "client",
    }
    jwt_sent: list[str] = []

    def signed() -> dict[str, str]:
        jwt_sent.append(token(key, SELECT))
        return {"Authorization": f"Bearer {jwt_sent[-1]}"}

    with caplog.at_level(logging.DEBUG), respx.mock() as mock:
        mock.get(url__startswith=f"{FHIR}/Patient").mock(
            return_value=httpx.Response(
                200, json={"resourceType": "Patient", "id": PATIENT, "name": [{"family": BODY_TEXT}]}
            )
        )
        mock.get(url__startswith=f"{FHIR}/Condition").mock(return_value=httpx.Response(500, text=BODY_TEXT))
        mock.get(url__startswith=FHIR).mock(return_value=httpx.Response(200, json=f.bundle([])))
        with TestClient(create_app(settings, store=SqliteFeedbackStore(":memory:"))) as client:
            failed = client.post(SELECT, json=body, headers=signed())  # Conditions fail: 412
            mock.get(url__startswith=f"{FHIR}/Condition").mock(return_value=httpx.Response(200, json=f.bundle([])))
            ok = client.post(SELECT, json=body, headers=signed())
            replayed = client.post(SELECT, json=body, headers={"Authorization": f"Bearer {jwt_sent[-1]}"})
            bad = dict(body, hookInstance=[BODY_TEXT])
            invalid = client.post(SELECT, json=bad, headers=signed())
            unauthenticated = client.post(SELECT, json=body, headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert (failed.status_code, ok.status_code, replayed.status_code) == (412, 200, 401)
    assert (invalid.status_code, unauthenticated.status_code) == (400, 401)
    assert ACCESS_TOKEN not in failed.text  # nor in what the client is told

    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "hookInstance=" in logged  # the log does say what happened
    for sentinel in (PATIENT, ACCESS_TOKEN, BODY_TEXT, *jwt_sent, *(j.split(".")[1] for j in jwt_sent)):
        assert sentinel not in logged, f"{sentinel[:20]}... reached the log"
