"""Variant inference: every variant reachable from realistic records; ambiguity; out of scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cds_service.engine.evaluate import default_engine
from cds_service.engine.facts import PatientFacts
from cds_service.engine.variants import imaging_variant, infer_variant, treatment_variant
from tests import records as r
from tests.factories import ICD10, ICD10CM, SNOMED, condition, read

ENGINE = default_engine()


def facts_of(record: list[dict[str, Any]], orders: list[dict[str, Any]] | None = None) -> PatientFacts:
    return ENGINE.extractor.extract(read(record), orders or [], today=r.TODAY, new_window=timedelta(weeks=12))


@pytest.mark.parametrize("mode", ["icd", "snomed", "mixed"])
@pytest.mark.parametrize("variant", range(1, 10))
def test_each_variant_is_reached_from_icd_snomed_and_mixed_records(variant: int, mode: r.Coding) -> None:
    phase = "imaging" if variant <= 4 else "treatment"
    inference = infer_variant(facts_of(r.record_for_variant(variant, mode)), phase)
    assert inference.candidates == {variant}
    assert inference.single == variant
    assert inference.deciding_facts == ()


def test_who_icd10_system_uri_is_accepted_too() -> None:
    """Spec: accept ICD-10-CM under both icd-10-cm and icd-10 system URIs."""
    record = [condition("v", "M48.56XA", ICD10, recorded=r.days_ago(3)), condition("p", "M54.50", ICD10)]
    assert infer_variant(facts_of(record), "imaging").candidates == {1}


def test_codes_without_dots_are_matched() -> None:
    record = [condition("v", "M4856XA", ICD10CM, recorded=r.days_ago(3)), condition("p", "M5450", ICD10CM)]
    assert infer_variant(facts_of(record), "imaging").candidates == {1}


def test_malignancy_outranks_multiple_fractures_for_imaging() -> None:
    """Spec: a new VCF in a cancer patient is malignant until proven otherwise."""
    record = [*r.record_for_variant(3), r.cancer("icd")]
    assert infer_variant(facts_of(record), "imaging").candidates == {2}


def test_resolved_cancer_is_still_a_history_of_malignancy() -> None:
    record = [r.lumbar_vcf("icd"), r.back_pain("icd"), r.cancer("icd", clinical="resolved")]
    assert infer_variant(facts_of(record), "imaging").candidates == {2}


def test_resolved_back_pain_is_not_a_symptom() -> None:
    record = [r.lumbar_vcf("icd"), r.back_pain("icd", clinical="resolved"), r.cancer("icd")]
    inference = infer_variant(facts_of(record), "imaging")
    assert inference.candidates == {2, 4}
    assert inference.deciding_facts == ("symptomatic",)


@pytest.mark.parametrize("status", ["entered-in-error", "refuted"])
def test_entered_in_error_and_refuted_conditions_are_ignored(status: str) -> None:
    record = [r.lumbar_vcf("icd"), r.back_pain("icd"), r.cancer("icd", verification=status)]
    assert infer_variant(facts_of(record), "imaging").candidates == {1}
    record = [r.lumbar_vcf("icd", verification=status), r.back_pain("icd")]
    assert infer_variant(facts_of(record), "imaging").candidates == {None}


def test_undocumented_symptoms_with_cancer_leave_variants_2_and_4_open() -> None:
    inference = infer_variant(facts_of([r.lumbar_vcf("icd"), r.cancer("icd")]), "imaging")
    assert inference.candidates == {2, 4}
    assert inference.deciding_facts == ("symptomatic",)


def test_undocumented_symptoms_without_cancer_may_fit_no_variant() -> None:
    inference = infer_variant(facts_of([r.lumbar_vcf("icd")]), "imaging")
    assert inference.candidates == {1, None}
    assert inference.deciding_facts == ("symptomatic",)


def test_fracture_without_dates_leaves_newness_open() -> None:
    vcf = condition("v", "M48.56XA")
    inference = infer_variant(facts_of([vcf, r.back_pain("icd")]), "imaging")
    assert inference.candidates == {1, None}
    assert inference.deciding_facts == ("new_fracture",)


def test_old_fracture_with_pain_fits_no_imaging_variant() -> None:
    record = [r.lumbar_vcf("icd", days=400), r.back_pain("icd")]
    assert infer_variant(facts_of(record), "imaging").candidates == {None}


def test_symptomatic_osteoporotic_fracture_without_mri_findings_names_the_mri() -> None:
    record = [r.lumbar_vcf("icd", kind="osteoporotic"), r.back_pain("icd")]
    inference = infer_variant(facts_of(record), "treatment")
    assert inference.candidates == {6, 8, None}
    assert inference.deciding_facts == ("marrow_edema_or_cleft", "worsening_pain")


def test_unspecified_fracture_in_cancer_patient_leaves_etiology_open_for_treatment() -> None:
    record = [r.lumbar_vcf("icd"), r.back_pain("icd"), r.cancer("icd")]
    inference = infer_variant(facts_of(record), "treatment")
    assert 9 in inference.candidates
    assert inference.deciding_facts[0] == "pathological"


def test_treatment_precedence_9_over_7_over_6_over_8() -> None:
    """Spec: 9 (pathological) over 7 (prior augmentation or surgery) over 6 over 8 over 5."""
    base = dict(
        vcf_current=True,
        vcf_history=False,
        malignancy=False,
        multiple_fractures=False,
        symptomatic=True,
        pathological=True,
        prior_treatment=True,
        marrow_edema_or_cleft=True,
        worsening_pain=True,
        deformity=True,
        pulmonary_dysfunction=True,
        new_fracture=True,
    )
    assert treatment_variant(base) == 9
    assert treatment_variant({**base, "pathological": False}) == 7
    assert treatment_variant({**base, "pathological": False, "prior_treatment": False}) == 6
    no_6 = {**base, "pathological": False, "prior_treatment": False, "marrow_edema_or_cleft": False}
    assert treatment_variant(no_6) == 8
    assert (
        treatment_variant(
            {**no_6, "worsening_pain": False, "deformity": False, "pulmonary_dysfunction": False, "symptomatic": False}
        )
        == 5
    )


def test_imaging_rules() -> None:
    base = dict(
        vcf_current=True,
        vcf_history=False,
        malignancy=False,
        multiple_fractures=False,
        prior_treatment=False,
        symptomatic=True,
        new_fracture=True,
    )
    assert imaging_variant(base) == 1
    assert imaging_variant({**base, "multiple_fractures": True}) == 3
    assert imaging_variant({**base, "malignancy": True}) == 2
    assert imaging_variant({**base, "malignancy": True, "symptomatic": False}) == 4
    assert imaging_variant({**base, "symptomatic": False}) is None
    history_only = {**base, "vcf_current": False, "vcf_history": True, "prior_treatment": True}
    assert imaging_variant(history_only) == 3
    assert imaging_variant({**history_only, "malignancy": True}) is None


@pytest.mark.parametrize(
    "record",
    [
        pytest.param([condition("t", "S32.010A", recorded=r.days_ago(2)), r.back_pain("icd")], id="traumatic-icd"),
        pytest.param(
            [condition("t", "207957008", SNOMED, recorded=r.days_ago(2)), r.back_pain("icd")], id="traumatic-sct"
        ),
        pytest.param([r.back_pain("icd"), r.cancer("icd")], id="no-vcf"),
        pytest.param([], id="empty-record"),
    ],
)
def test_no_variant_fits_out_of_scope_patients(record: list[dict[str, Any]]) -> None:
    for phase in ("imaging", "treatment"):
        assert infer_variant(facts_of(record), phase).candidates == {None}  # type: ignore[arg-type]
