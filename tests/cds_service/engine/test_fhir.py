"""Thin FHIR readers: the structs keep what the engine reads, and a malformed element costs only itself."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.engine.fhir import (
    CodeableConcept,
    Coding,
    Document,
    Resource,
    codings,
    concept_of,
    parse_date,
    read_as,
    read_document,
)
from tests.strategies import FHIRISH, NAMES

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def test_a_malformed_coding_drops_that_coding_not_the_concept() -> None:
    resource = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [{"system": 5, "code": "x"}, {"system": ICD, "code": "M48.56XA"}], "text": "VCF"},
        "note": "not a list",
        "onsetDateTime": 2026,
    }
    read = read_document(orjson.dumps(resource))
    assert read == Document(
        resourceType="Condition",
        id="c1",
        code=CodeableConcept(coding=(Coding(code="x"), Coding(system=ICD, code="M48.56XA")), text="VCF"),
    )
    assert read is not None and read.code is not None
    assert [c.code for c in read.code.codes()] == ["M48.56XA"]


def test_a_well_formed_resource_reads_the_same_either_way() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3", "display": "eGFR"}]},
        "valueQuantity": {"value": 41, "unit": "mL/min"},
        "note": [{"text": "on dialysis"}],
        "subject": {"reference": "Patient/p1"},
    }
    strict = msgspec.convert(resource, Document)
    assert read_document(orjson.dumps(resource)) == strict == read_document(resource)
    assert strict.valueQuantity is not None and strict.valueQuantity.value == 41.0
    assert strict.reference == "Observation/o1" and [n.text for n in strict.note] == ["on dialysis"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [([], None), ("x", None), (None, None), (7, None), ({"resourceType": 7}, Document())],
)
def test_only_a_json_object_is_a_document(value: Any, expected: Document | None) -> None:
    assert read_document(value) == expected
    assert read_document(orjson.dumps(value)) == expected


def test_bytes_that_are_not_json_raise_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        read_document(b"{not json")


def test_bundles_drop_outcomes_and_give_the_next_page() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c"}},
            {"resource": {"resourceType": "OperationOutcome"}},
            {"fullUrl": "no resource"},
            "garbage",
        ],
        "link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "b"}],
    }
    document = read_document(orjson.dumps(bundle))
    assert document is not None
    assert [r.reference for r in document.resources()] == ["Condition/c"]
    assert document.next_link() == "b"


def test_dict_concepts_of_draft_orders_read_like_the_record() -> None:
    concept = {"coding": [{"system": f" {ICD} ", "code": " M48.56XA "}, {"code": "no system"}], "text": 3}
    assert [tuple(c) for c in codings(concept)] == [(ICD, "M48.56XA", None)]
    assert concept_of(concept) == CodeableConcept(
        coding=(Coding(system=f" {ICD} ", code=" M48.56XA "), Coding(code="no system"))
    )
    assert codings("not a concept") == [] and concept_of(None) is None


def test_labels_fall_back_from_text_to_display_to_code() -> None:
    assert CodeableConcept(text="t", coding=(Coding(display="d"),)).label() == "t"
    assert CodeableConcept(coding=(Coding(display="d"),)).label() == "d"
    assert CodeableConcept(coding=(Coding(system=ICD, code="M48.56XA"),)).label() == "M48.56XA (ICD-10-CM)"
    assert CodeableConcept().label() is None


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=FHIRISH)
def test_any_json_reads_without_raising_and_both_paths_agree(value: Any) -> None:
    from_bytes = read_document(msgspec.json.encode(value))
    assert from_bytes == read_document(value)
    if isinstance(value, dict):
        assert isinstance(from_bytes, Document)
        # What was kept is exactly what the structs hold: it reads back strictly, unchanged.
        assert msgspec.convert(msgspec.to_builtins(from_bytes), Document) == from_bytes
    else:
        assert from_bytes is None


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.dictionaries(NAMES, FHIRISH, max_size=6))
def test_salvage_keeps_every_element_that_fits(value: dict[str, Any]) -> None:
    salvaged = read_as(value, Resource)
    assert salvaged is not None
    for name in msgspec.structs.fields(Resource):
        if name.encode_name not in value:
            continue
        try:
            strict = msgspec.convert(value[name.encode_name], name.type)
        except msgspec.ValidationError:
            continue  # did not fit: dropped, or kept in part
        assert getattr(salvaged, name.name) == strict


def _plain_date(value: str) -> date | None:
    """The definition parse_date's C fast path must agree with: the date part of a FHIR date."""
    if "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    match = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value)
    try:
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1)) if match else None
    except ValueError:
        return None


@settings(max_examples=500, deadline=None)
@given(
    value=st.from_regex(r"\A\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?)?)?)?\Z")
    | st.text(alphabet="0123456789-TZ:+ W٣", max_size=12)
)
def test_parse_date_agrees_with_the_plain_definition(value: str) -> None:
    assert parse_date(value) == _plain_date(value)
