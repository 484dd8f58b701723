"""Synthetic but realistic patient records of a chosen size, and the hook request that carries them.

A variant-2 patient (new lumbar VCF, back pain, metastatic cancer) whose record is padded with the
everyday clutter of a real chart: other problems, labs, vitals, procedures, allergies.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

TODAY = date(2026, 11, 21)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
_PROBLEMS = [
    ("I10", "Essential hypertension"),
    ("E11.9", "Type 2 diabetes"),
    ("E78.5", "Hyperlipidemia"),
    ("J44.9", "COPD"),
    ("K21.9", "GERD"),
    ("M17.11", "Osteoarthritis right knee"),
    ("F32.9", "Depression"),
    ("N18.3", "CKD stage 3"),
    ("M81.0", "Age-related osteoporosis"),
]
_LABS = [
    ("2160-0", "Creatinine", 1.1),
    ("718-7", "Hemoglobin", 12.9),
    ("33914-3", "eGFR", 58.0),
    ("2345-7", "Glucose", 104.0),
    ("8480-6", "Systolic blood pressure", 132.0),
]


def _day(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def _condition(cid: str, code: str, text: str, days: int, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/bench"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}
                ]
            }
        ],
        "code": {"coding": [{"system": ICD, "code": code, "display": text}], "text": text},
        "recordedDate": _day(days),
        "note": [{"text": f"{text}; followed in clinic."}],
    }


def record(size: int, patient: int = 0) -> list[dict[str, Any]]:
    """A record of exactly ``size`` resources (at least 4), the clinically relevant ones first.

    ``patient`` makes the record (ids, dates and texts) distinct from other patients' records.
    """
    resources = [
        _condition("vcf", "M48.56XA", "L1 compression fracture", 9),
        _condition("pain", "M54.50", "Low back pain", 5),
        _condition("ca", "C79.51", "Metastatic breast cancer to bone", 400),
        {"resourceType": "Patient", "id": "bench", "name": [{"family": "Bench", "given": ["Mark"]}]},
    ]
    i = 0
    while len(resources) < size:
        kind = i % 4
        if kind == 0:
            code, text = _PROBLEMS[i % len(_PROBLEMS)]
            resources.append(_condition(f"c{i}", code, text, 30 + i, "active" if i % 3 else "resolved"))
        elif kind == 1:
            code, text, value = _LABS[i % len(_LABS)]
            resources.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "subject": {"reference": "Patient/bench"},
                    "category": [{"coding": [{"code": "laboratory"}]}],
                    "effectiveDateTime": _day(i % 700),
                    "code": {"coding": [{"system": LOINC, "code": code}], "text": text},
                    "valueQuantity": {"value": value + (i % 7), "unit": "1"},
                }
            )
        elif kind == 2:
            resources.append(
                {
                    "resourceType": "Procedure",
                    "id": f"p{i}",
                    "status": "completed",
                    "subject": {"reference": "Patient/bench"},
                    "code": {"coding": [{"system": SNOMED, "code": "73761001"}], "text": "Colonoscopy"},
                    "performedDateTime": _day(200 + i),
                }
            )
        else:
            resources.append(
                {
                    "resourceType": "Observation",
                    "id": f"n{i}",
                    "status": "final",
                    "subject": {"reference": "Patient/bench"},
                    "category": [{"coding": [{"code": "exam"}]}],
                    "effectiveDateTime": _day(i % 300),
                    "code": {"text": "Clinical note"},
                    "valueString": f"Visit {i}: patient reports stable mobility, no falls, uses a cane outdoors.",
                }
            )
        i += 1
    if patient:
        for resource in resources:
            resource["id"] = f"{resource['id']}-{patient}"
            if "note" in resource:
                resource["note"] = [{"text": f"{resource['note'][0]['text']} Patient {patient}."}]
            if "valueString" in resource:
                resource["valueString"] = f"{resource['valueString']} Patient {patient}."
    return resources[:size]


def draft_order(code: str = "72131") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "bench-order",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": CPT, "code": code}]},
        "subject": {"reference": "Patient/bench"},
        "reasonCode": [{"coding": [{"system": SNOMED, "code": "279039007", "display": "Low back pain"}]}],
    }


def order_select_body(
    size: int, *, with_prefetch: bool = True, fhir_server: str | None = None, patient: int = 0
) -> dict[str, Any]:
    """A typical order-select call: one selected imaging draft, prefetch holding a ``size`` record."""
    resources = record(size, patient)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)

    def bundle(kind: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in by_type.get(kind, [])],
        }

    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": "order-select",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "bench",
            "selections": ["ServiceRequest/bench-order"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft_order()}]},
        },
    }
    if with_prefetch:
        body["prefetch"] = {
            "patient": by_type["Patient"][0],
            "conditions": bundle("Condition"),
            "procedures": bundle("Procedure"),
            "observations": bundle("Observation"),
            "allergies": bundle("AllergyIntolerance"),
        }
    if fhir_server:
        body["fhirServer"] = fhir_server
    return body
