"""GET /metrics: Prometheus text with hook calls, latency, cards, ratings, FHIR fetches and feedback."""

from __future__ import annotations

import httpx
import respx
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests import factories as f
from tests import records

SELECT = "/cds-services/vcf-imaging-order-select"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_what_happened(client: TestClient) -> None:
    before = {
        "calls": value("cds_hook_calls_total", service="vcf-imaging-order-select", status="200"),
        "bad": value("cds_hook_calls_total", service="vcf-imaging-order-select", status="400"),
        "cards": value("cds_cards_total", indicator="warning", kind="lower-rated"),
        "ratings": value("cds_ratings_total", category="may-be-appropriate"),
        "fetch_failed": value("cds_fhir_fetches_total", outcome="failed"),
        "feedback": value("cds_feedback_total", outcome="accepted"),
        "latency": value("cds_hook_latency_seconds_count", service="vcf-imaging-order-select"),
    }
    prefetch = f.empty_prefetch()
    prefetch["conditions"] = f.bundle(records.record_for_variant(1))
    body = f.sandbox_order_select([f.service_request(codings=[{"system": f.CPT, "code": "78306"}])], prefetch=prefetch)
    card = client.post(SELECT, json=body).json()["cards"][0]
    client.post(SELECT, content=b"not json")
    missing = f.sandbox_order_select(fhir_server="https://ehr.example.org/fhir", prefetch={"patient": None})
    with respx.mock() as mock:
        mock.get(url__startswith="https://ehr.example.org").mock(return_value=httpx.Response(500))
        assert client.post(SELECT, json=missing).status_code == 412
    accepted = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            }
        ]
    }
    client.post(f"{SELECT}/feedback", json=accepted)

    response = client.get("/metrics")  # open like /health: no patient data, restrict at the proxy
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "cds_hook_latency_seconds_bucket" in response.text
    assert value("cds_hook_calls_total", service="vcf-imaging-order-select", status="200") == before["calls"] + 1
    assert value("cds_hook_calls_total", service="vcf-imaging-order-select", status="400") == before["bad"] + 1
    assert value("cds_cards_total", indicator="warning", kind="lower-rated") == before["cards"] + 1
    assert value("cds_ratings_total", category="may-be-appropriate") == before["ratings"] + 1
    assert value("cds_fhir_fetches_total", outcome="failed") >= before["fetch_failed"] + 1
    assert value("cds_feedback_total", outcome="accepted") == before["feedback"] + 1
    assert value("cds_hook_latency_seconds_count", service="vcf-imaging-order-select") == before["latency"] + 3
