"""Realistic FHIR patient records that reach each ACR variant, coded ICD-10-CM only, SNOMED only or both.

Dates are relative to ``TODAY``, the fixed clock the tests set.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from tests.factories import CPT, ICD10CM, LOINC, SNOMED, condition

TODAY = date(2026, 11, 21)
Coding = Literal["icd", "snomed", "mixed"]


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def coded(cid: str, icd: str, snomed: str, mode: Coding, **kw: Any) -> dict[str, Any]:
    """A Condition coded per ``mode`` (mixed: both codings in one CodeableConcept)."""
    if mode == "icd":
        return condition(cid, icd, ICD10CM, **kw)
    if mode == "snomed":
        return condition(cid, snomed, SNOMED, **kw)
    resource = condition(cid, icd, ICD10CM, **kw)
    resource["code"]["coding"].append({"system": SNOMED, "code": snomed})
    return resource


def lumbar_vcf(
    mode: Coding, cid: str = "vcf", *, days: int = 10, kind: str = "unspecified", **kw: Any
) -> dict[str, Any]:
    codes = {
        "unspecified": ("M48.56XA", "426646004"),
        "osteoporotic": ("M80.08XA", "203450003"),
        "pathological": ("M84.58XA", "866087009"),
    }[kind]
    return coded(cid, *codes, mode, recorded=days_ago(days), **kw)


def back_pain(mode: Coding, cid: str = "pain", **kw: Any) -> dict[str, Any]:
    return coded(cid, "M54.50", "279039007", mode, recorded=days_ago(5), **kw)


def cancer(mode: Coding, cid: str = "ca", **kw: Any) -> dict[str, Any]:
    return coded(cid, "C79.51", "94222008", mode, recorded=days_ago(400), **kw)


def note(resource: dict[str, Any], text: str) -> dict[str, Any]:
    resource.setdefault("note", []).append({"text": text})
    return resource


def observation(oid: str, text: str, *, code: str | None = None, value: float | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": days_ago(3),
        "code": {"text": text} if code is None else {"coding": [{"system": LOINC, "code": code}], "text": text},
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": "mL/min/{1.73_m2}"}
    else:
        resource["valueString"] = text
    return resource


def procedure(pid: str, code: str, system: str = CPT, *, status: str = "completed", days: int = 700) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": system, "code": code}]},
        "performedDateTime": days_ago(days),
    }


def mri_report(oid: str, text: str) -> dict[str, Any]:
    return observation(oid, text)


def record_for_variant(variant: int, mode: Coding = "icd") -> list[dict[str, Any]]:
    """A patient whose record leads to exactly ``variant`` for orders of that variant's phase."""
    if variant == 1:
        return [lumbar_vcf(mode), back_pain(mode)]
    if variant == 2:
        return [lumbar_vcf(mode), back_pain(mode), cancer(mode)]
    if variant == 3:
        older = coded("vcf-old", "M48.54XA", "203451004", mode, recorded=days_ago(900), clinical="resolved")
        return [lumbar_vcf(mode), older, back_pain(mode)]
    if variant == 4:
        return [note(lumbar_vcf(mode), "Incidental finding on chest radiograph; patient asymptomatic."), cancer(mode)]
    if variant == 5:
        return [
            note(lumbar_vcf(mode, kind="osteoporotic"), "Asymptomatic; found on DXA vertebral fracture assessment.")
        ]
    if variant == 6:
        return [
            lumbar_vcf(mode, kind="osteoporotic"),
            back_pain(mode),
            mri_report("mri", "MRI lumbar spine: acute L1 compression fracture with bone marrow edema."),
        ]
    if variant == 7:
        return [lumbar_vcf(mode, kind="osteoporotic"), back_pain(mode), procedure("vp", "22511")]
    if variant == 8:
        return [
            note(lumbar_vcf(mode, kind="osteoporotic"), "Worsening back pain despite analgesia."),
            back_pain(mode),
            mri_report("mri", "MRI lumbar spine: chronic L1 fracture, no marrow edema, no cleft."),
        ]
    if variant == 9:
        return [lumbar_vcf(mode, kind="pathological"), back_pain(mode), cancer(mode)]
    raise ValueError(variant)
