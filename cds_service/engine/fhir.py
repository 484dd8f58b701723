"""Thin readers over FHIR R4 JSON: codings, texts, dates, statuses and references.

Prefetch data is read as plain dicts (full fhir.resources validation of whole Bundles costs 30-45x
JSON parsing); every accessor tolerates missing or malformed elements and never raises.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, NamedTuple

_SYSTEM_NAMES = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://loinc.org": "LOINC",
}
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def items(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else nothing: FHIR repeating elements read defensively."""
    return value if isinstance(value, list) else []


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a Bundle's entries; OperationOutcomes (errors and search outcomes) are not data."""
    out: list[dict[str, Any]] = []
    for entry in items(bundle.get("entry")):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
            out.append(resource)
    return out


class Code(NamedTuple):
    """One Coding, reduced to what matching needs (a tuple: a chart holds hundreds, built per call)."""

    system: str
    code: str
    display: str | None = None


def codings(concept: Any) -> list[Code]:
    """The usable Codings of a CodeableConcept (each needs a system and a code)."""
    if not isinstance(concept, dict):
        return []
    out: list[Code] = []
    for coding in items(concept.get("coding")):
        if not isinstance(coding, dict):
            continue
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str) and system and code:
            display = coding.get("display")
            out.append(Code(system.strip(), code.strip(), display if isinstance(display, str) else None))
    return out


def concept_text(concept: Any) -> list[str]:
    """``text`` and every Coding ``display`` of a CodeableConcept."""
    if not isinstance(concept, dict):
        return []
    texts = [concept["text"]] if isinstance(concept.get("text"), str) else []
    for coding in items(concept.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            texts.append(coding["display"])
    return texts


def notes(resource: dict[str, Any]) -> list[str]:
    """Texts of ``note`` (Annotation) elements."""
    return [n["text"] for n in items(resource.get("note")) if isinstance(n, dict) and isinstance(n.get("text"), str)]


def status_code(concept: Any) -> str | None:
    """The first code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    if isinstance(concept, dict):
        for coding in items(concept.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


def parse_date(value: Any) -> date | None:
    """The date part of a FHIR date or dateTime; a year or year-month takes the first day."""
    if not isinstance(value, str):
        return None
    if "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    match = _DATE_RE.match(value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        return None


def reference_of(resource: dict[str, Any]) -> str:
    """``Type/id`` of a resource (``Type/?`` when it has no id)."""
    ident = resource.get("id")
    return f"{resource.get('resourceType', 'Resource')}/{ident if isinstance(ident, str) else '?'}"


def first_text(concept: Any) -> str | None:
    """A human label for a CodeableConcept: its text, else its first display, else its first code."""
    texts = concept_text(concept)
    if texts:
        return texts[0]
    found = codings(concept)
    if not found:
        return None
    return f"{found[0].code} ({_SYSTEM_NAMES.get(found[0].system, found[0].system)})"
