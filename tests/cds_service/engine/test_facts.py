"""Fact extraction (product-spec §3.2): each fact with the resources that prove it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cds_service.engine.evaluate import default_engine
from cds_service.engine.facts import PatientFacts
from tests import records as r
from tests.factories import ICD10CM, SNOMED, condition, read, service_request

ENGINE = default_engine()


def facts_of(record: list[dict[str, Any]], orders: list[dict[str, Any]] | None = None, weeks: int = 12) -> PatientFacts:
    return ENGINE.extractor.extract(read(record), orders or [], today=r.TODAY, new_window=timedelta(weeks=weeks))


def refs(facts: PatientFacts, name: str) -> list[str]:
    return [e.reference for e in facts.finding(name).evidence]


def test_vcf_kind_and_evidence() -> None:
    facts = facts_of([r.lumbar_vcf("icd", kind="osteoporotic"), r.cancer("icd")])
    assert facts.vcf_current.value and refs(facts, "vcf_current") == ["Condition/vcf"]
    assert facts.vcf_kind == "osteoporotic"
    assert facts.pathological.value is False
    assert facts.malignancy.value and refs(facts, "malignancy") == ["Condition/ca"]


def test_pathological_neoplastic_fracture_proves_malignancy_too() -> None:
    facts = facts_of([r.lumbar_vcf("snomed", kind="pathological")])
    assert facts.vcf_kind == "pathological" and facts.pathological.value
    assert facts.malignancy.value


def test_fracture_region_from_icd_character_snomed_concept_and_body_site() -> None:
    assert facts_of([condition("v", "M48.54XA")]).fracture_region == {"thoracic"}
    assert facts_of([condition("v", "M48.55XA")]).fracture_region == {"thoracic", "lumbar"}
    assert facts_of([condition("v", "311806008", SNOMED)]).fracture_region == {"cervical"}
    site = condition("v", "M80.08XA", bodySite=[{"text": "T12 vertebral body"}])
    assert facts_of([site]).fracture_region == {"thoracic"}


def test_new_fracture_window_is_configurable() -> None:
    vcf = r.lumbar_vcf("icd", days=50)
    assert facts_of([vcf]).new_fracture.value is True
    assert facts_of([vcf], weeks=4).new_fracture.value is False
    assert facts_of([condition("v", "M48.56XA")]).new_fracture.value is None


def test_onset_date_counts_before_recorded_date() -> None:
    vcf = condition("v", "M48.56XA", onset=r.days_ago(200), recorded=r.days_ago(2))
    assert facts_of([vcf]).new_fracture.value is False


def test_vcf_named_as_an_order_reason_counts_as_current_and_new() -> None:
    order = service_request(reasons=[{"system": ICD10CM, "code": "M48.56XA"}])
    facts = facts_of([], [order])
    assert facts.vcf_current.value and facts.new_fracture.value
    assert refs(facts, "vcf_current") == ["ServiceRequest/example-request-id#reasonCode"]


def test_symptoms_from_conditions_order_reasons_and_text() -> None:
    assert facts_of([r.back_pain("snomed")]).symptomatic.value is True
    order = service_request(reasons=[{"system": SNOMED, "code": "279039007"}])
    assert facts_of([], [order]).symptomatic.value is True
    assert facts_of([r.note(condition("v", "M48.56XA"), "Painful L1 fracture")]).symptomatic.value is True
    assert facts_of([r.note(condition("v", "M48.56XA"), "Asymptomatic.")]).symptomatic.value is False
    assert facts_of([condition("v", "M48.56XA")]).symptomatic.value is None


def test_plain_pain_is_not_worsening_pain() -> None:
    facts = facts_of([r.lumbar_vcf("icd"), r.back_pain("icd")])
    assert facts.symptomatic.value is True and facts.worsening_pain.value is None
    worse = facts_of([r.note(r.lumbar_vcf("icd"), "Pain is getting worse every week")])
    assert worse.worsening_pain.value is True and worse.symptomatic.value is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bone marrow edema in the L1 vertebral body.", True),
        ("STIR hyperintensity at L1 consistent with acute fracture", True),
        ("Intravertebral cleft (Kummell disease) at T12", True),
        ("No marrow edema.", False),
        ("Without evidence of bone marrow oedema; old fracture.", False),
        ("Marrow edema absent", False),
        ("No new fracture; marrow edema at L2.", True),
        ("Chronic wedge deformity.", None),
    ],
)
def test_marrow_edema_and_cleft_read_from_text_with_negation(text: str, expected: bool | None) -> None:
    facts = facts_of([r.lumbar_vcf("icd"), r.mri_report("mri", text)])
    assert facts.marrow_edema_or_cleft.value is expected
    if expected is not None:
        assert refs(facts, "marrow_edema_or_cleft") == ["Observation/mri"]


def test_multiple_fractures_need_distinct_levels_not_duplicate_records() -> None:
    same = [r.lumbar_vcf("icd", "a"), r.lumbar_vcf("icd", "b", days=30)]
    assert facts_of(same).multiple_fractures.value is False
    two = [r.lumbar_vcf("icd", "a"), condition("b", "M48.54XA", recorded=r.days_ago(40))]
    assert facts_of(two).multiple_fractures.value is True
    levels = [r.note(condition("a", "M80.08XA"), "L1"), r.note(condition("b", "M80.08XA"), "L3")]
    assert facts_of(levels).multiple_fractures.value is True
    text = [r.note(condition("a", "M80.08XA"), "Multiple osteoporotic compression fractures")]
    assert facts_of(text).multiple_fractures.value is True


def test_prior_augmentation_and_surgery() -> None:
    assert refs(facts_of([r.procedure("vp", "22513")]), "prior_treatment") == ["Procedure/vp"]
    assert facts_of([r.procedure("fusion", "50172003", SNOMED)]).prior_treatment.value is True
    assert facts_of([condition("z", "Z98.1")]).prior_treatment.value is True
    assert facts_of([r.procedure("vp", "22513", status="not-done")]).prior_treatment.value is False
    assert facts_of([r.procedure("pcs", "0QU03JZ", "http://www.cms.gov/Medicare/Coding/ICD10")]).prior_treatment.value


def test_deformity_and_pulmonary_dysfunction() -> None:
    assert facts_of([condition("k", "M40.209")]).deformity.value is True
    assert facts_of([condition("k", "203657009", SNOMED)]).deformity.value is True
    assert facts_of([r.note(r.lumbar_vcf("icd"), "Progressive kyphosis")]).deformity.value is True
    assert facts_of([r.lumbar_vcf("icd")]).deformity.value is False
    lung = r.note(r.lumbar_vcf("icd"), "Restrictive lung disease from thoracic kyphosis")
    assert facts_of([lung]).pulmonary_dysfunction.value is True


def test_neurologic_deficit() -> None:
    assert facts_of([condition("n", "G95.20")]).neurologic_deficit.value is True
    assert facts_of([condition("n", "71286001", SNOMED)]).neurologic_deficit.value is True
    assert facts_of([condition("n", "G95.20", clinical="resolved")]).neurologic_deficit.value is False
    assert facts_of([condition("rad", "M54.16")]).neurologic_deficit.value is False  # radiculopathy alone
    assert facts_of([r.note(r.lumbar_vcf("icd"), "No cord compression.")]).neurologic_deficit.value is False


def test_mri_contraindication() -> None:
    assert refs(facts_of([condition("pm", "Z95.0")]), "mri_contraindication") == ["Condition/pm"]
    assert facts_of([condition("ci", "Z96.21")]).mri_contraindication.value is True
    implant = {"resourceType": "Procedure", "id": "x", "status": "completed", "code": {"text": "Pacemaker insertion"}}
    assert facts_of([implant]).mri_contraindication.value is True
    assert facts_of([]).mri_contraindication.value is False


def test_gadolinium_risk_from_egfr_dialysis_and_allergy() -> None:
    low = facts_of([r.observation("egfr", "eGFR", code="98979-8", value=22)])
    assert low.gadolinium_risk.value and refs(low, "gadolinium_risk") == ["Observation/egfr"]
    assert facts_of([r.observation("egfr", "eGFR", code="33914-3", value=64)]).gadolinium_risk.value is False
    assert facts_of([condition("d", "Z99.2")]).gadolinium_risk.value is True
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a",
        "code": {"text": "Gadolinium-based contrast agents"},
        "patient": {"reference": "Patient/p1"},
    }
    assert facts_of([allergy]).gadolinium_risk.value is True
    refuted = {**allergy, "verificationStatus": {"coding": [{"code": "refuted"}]}}
    assert facts_of([refuted]).gadolinium_risk.value is False


def test_latest_egfr_wins() -> None:
    old = r.observation("old", "eGFR", code="98979-8", value=20)
    old["effectiveDateTime"] = r.days_ago(300)
    new = r.observation("new", "eGFR", code="98979-8", value=70)
    assert facts_of([old, new]).gadolinium_risk.value is False


def test_unknown_resource_types_and_garbage_are_ignored() -> None:
    junk: list[Any] = [
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "Condition"},
        {"resourceType": "Condition", "code": "not-a-concept", "clinicalStatus": 5},
        {"resourceType": "Observation", "valueQuantity": {"value": "x"}, "code": {"coding": [{"code": None}]}},
    ]
    facts = facts_of(junk)
    assert facts.vcf_current.value is False and facts.symptomatic.value is None


@pytest.mark.parametrize("variant", range(1, 10))
def test_clutter_changes_no_fact(variant: int) -> None:
    """Resources in no value set whose texts mention no finding are dropped early; the facts, evidence
    included, are exactly those of the record without them."""
    clutter = [
        condition("htn", "I10", ICD10CM, text="Essential hypertension"),
        r.observation("hb", "Hemoglobin", code="718-7", value=12.9),
        r.observation("visit", "Visit: stable mobility, no falls, uses a cane outdoors."),
        r.procedure("colo", "73761001", SNOMED),
        {"resourceType": "Patient", "id": "p"},
    ]
    core = r.record_for_variant(variant)
    assert facts_of(clutter + core + clutter) == facts_of(core)
