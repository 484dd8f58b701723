"""Builders of CDS Hooks requests and FHIR resources shaped like what real clients send."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import msgspec

from cds_service.engine.fhir import Resource, read_as, read_document

CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"


def resource(value: dict[str, Any]) -> Resource:
    """One resource as a Bundle entry's resource is read."""
    found = read_as(value, Resource)
    assert found is not None
    return found


def read(record: list[dict[str, Any]]) -> list[Resource]:
    """A record as the engine receives it: each resource sent as JSON and decoded as prefetch is."""
    found = [read_document(msgspec.json.encode(resource)) for resource in record]
    return [resource for resource in found if resource is not None]


def service_request(
    order_id: str = "example-request-id",
    *,
    codings: list[dict[str, str]] | None = None,
    patient: str = "p1",
    reasons: list[dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A draft ServiceRequest like the sandbox's PAMA view builds (intent plan, no encounter)."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "draft",
        "intent": "plan",
        "code": {"coding": codings if codings is not None else [{"system": CPT, "code": "72148"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if reasons:
        resource["reasonCode"] = [{"coding": [r]} for r in reasons]
    resource.update(extra)
    return resource


def bundle(resources: list[dict[str, Any]], *, bundle_type: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    if bundle_type:
        out["type"] = bundle_type
    return out


def condition(
    cid: str,
    code: str,
    system: str = ICD10CM,
    *,
    patient: str = "p1",
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    onset: str | None = None,
    recorded: str | None = None,
    text: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": system, "code": code}]},
    }
    if text:
        resource["code"]["text"] = text
    if clinical:
        resource["clinicalStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        }
    if verification:
        resource["verificationStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]
        }
    if onset:
        resource["onsetDateTime"] = onset
    if recorded:
        resource["recordedDate"] = recorded
    resource.update(extra)
    return resource


def sandbox_order_select(
    orders: list[dict[str, Any]] | None = None,
    *,
    selections: list[str] | None = None,
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = "http://localhost:8081/fhir",
) -> dict[str, Any]:
    """An order-select call shaped like the CDS Hooks sandbox's PAMA view (no Bundle.type, no encounter)."""
    orders = orders if orders is not None else [service_request()]
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": "order-select",
        "context": {
            "userId": "Practitioner/COREPRACTITIONER1",
            "patientId": "p1",
            "selections": selections or [f"ServiceRequest/{orders[0]['id']}"],
            "draftOrders": bundle(orders),
        },
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def empty_prefetch() -> dict[str, Any]:
    """Every prefetch key answered: no data for any of them."""
    return {
        "patient": {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Ana"], "family": "Silva"}]},
        "conditions": bundle([], bundle_type="searchset"),
        "procedures": None,
        "observations": bundle([], bundle_type="searchset"),
        "allergies": None,
    }


def epic_order_sign(orders: list[dict[str, Any]] | None = None, **prefetch_overrides: Any) -> dict[str, Any]:
    """An order-sign call shaped like Epic's: Bundle.type collection, encounter, fhirAuthorization."""
    orders = orders if orders is not None else [service_request("sr-1", encounter={"reference": "Encounter/e1"})]
    prefetch = empty_prefetch()
    prefetch.update(prefetch_overrides)
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": "order-sign",
        "fhirServer": "https://ehr.example.org/fhir",
        "fhirAuthorization": {
            "access_token": "SECRET-TOKEN-123",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "vcf-cds",
        },
        "context": {
            "userId": "Practitioner/123",
            "patientId": "p1",
            "encounterId": "e1",
            "draftOrders": bundle(orders, bundle_type="collection"),
        },
        "prefetch": copy.deepcopy(prefetch),
    }
