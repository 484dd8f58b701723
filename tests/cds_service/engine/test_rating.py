"""Rating orders: every procedure of every variant rates as the reference tables say."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cds_service.engine.evaluate import default_engine
from cds_service.engine.rating import OrderDecision, Status
from tests import records as r
from tests.factories import CPT, LOINC, SNOMED, condition, read, service_request

ENGINE = default_engine()
K = ENGINE.knowledge
REFERENCE = json.loads((Path(__file__).parents[2] / "reference" / "acr-vcf-2022.json").read_text())
CATEGORY = {
    "Usually appropriate": "usually-appropriate",
    "May be appropriate": "may-be-appropriate",
    "Usually not appropriate": "usually-not-appropriate",
}
NAME_TO_ID = {p.name: p.id for p in K.acr.procedures}


def decide(record: list[dict[str, Any]], codings: list[dict[str, str]], **order_kw: Any) -> OrderDecision:
    order = service_request(codings=codings, **order_kw)
    evaluation = ENGINE.evaluate(
        read(record), orders_to_rate=[order], draft_orders=[order], today=r.TODAY, new_window=timedelta(weeks=12)
    )
    return evaluation.decisions[0]


def order_codes(procedure_id: str) -> list[dict[str, str]]:
    """Codes of an orderable lumbar (or whole-body) form of the procedure, as an EHR would send."""
    items = [i for i in K.catalog.items if i.procedure == procedure_id]
    item = next((i for i in items if i.region == ["lumbar"]), items[0])
    return [{"system": c.system, "code": c.code} for c in item.codes[:1]]


def reference_rows() -> list[tuple[int, str, str, int | None]]:
    rows = []
    for variant in REFERENCE["variants"]:
        for row in variant["procedures"]:
            name = row["procedure"]
            pid = NAME_TO_ID.get(name, "medical-management")  # V7's lost first row (inferred)
            median = row["median_rating"] if isinstance(row["median_rating"], int) else None
            rows.append((variant["variant_number_inferred"], pid, CATEGORY[row["category"]], median))
    return rows


@pytest.mark.parametrize(("variant", "procedure", "category", "median"), reference_rows())
def test_every_procedure_of_every_variant_rates_as_the_reference(
    variant: int, procedure: str, category: str, median: int | None
) -> None:
    decision = decide(r.record_for_variant(variant, "mixed"), order_codes(procedure))
    assert decision.status is Status.RATED
    assert decision.inference is not None and decision.inference.variants == (variant,)
    assert decision.rating is not None
    assert (decision.rating.category, decision.rating.median) == (category, median)


@pytest.mark.parametrize(
    ("codings", "item"),
    [
        ([{"system": CPT, "code": "72148"}], "mri-l-wo"),
        ([{"system": LOINC, "code": "30679-5"}], "mri-l-wo"),
        ([{"system": "http://www.radlex.org", "code": "RPID541"}], "mri-l-wo"),
        ([{"system": "http://radlex.org", "code": "RPID541"}], "mri-l-wo"),
        ([{"system": "http://example.org/local", "code": "X1"}, {"system": CPT, "code": "72158"}], "mri-l-wwo"),
        ([{"system": SNOMED, "code": "306265007"}], "referral-pain-management"),
        ([{"system": CPT, "code": "22514"}], "vertebroplasty-kyphoplasty"),
    ],
)
def test_orders_map_by_any_of_their_codings(codings: list[dict[str, str]], item: str) -> None:
    decision = decide(r.record_for_variant(1), codings)
    assert decision.item is not None and decision.item.id == item


@pytest.mark.parametrize(
    "codings",
    [
        [{}],  # the sandbox's first call, before a study is picked
        [{"system": CPT, "code": "73721"}],  # MRI knee
        [{"system": LOINC, "code": "36801-9"}],  # MRA knee vessels (the spec's own example)
        [{"system": CPT, "code": "71046"}],  # chest radiograph
        [{"system": CPT, "code": "77080"}],  # DXA: about osteoporosis, not rated by this topic
    ],
)
def test_orders_outside_the_topic_are_left_alone(codings: list[dict[str, str]]) -> None:
    decision = decide(r.record_for_variant(2), codings)
    assert decision.status is Status.OUT_OF_TOPIC and decision.rating is None


def test_no_rating_without_a_fitting_variant() -> None:
    traumatic = [condition("t", "S32.010A", recorded=r.days_ago(1)), r.back_pain("icd")]
    assert decide(traumatic, order_codes("mri-wo")).status is Status.NO_VARIANT


def test_procedure_not_listed_in_the_variant_is_not_rated() -> None:
    """Biopsy is not rated in variant 1."""
    assert decide(r.record_for_variant(1), order_codes("biopsy")).status is Status.NOT_LISTED


def test_rating_where_open_variants_agree_and_none_where_they_differ() -> None:
    """Spec: rate only if every open variant gives it the same rating (here V2 and V4)."""
    record = [r.lumbar_vcf("icd"), r.cancer("icd")]
    agreed = decide(record, order_codes("mri-wwo"))
    assert agreed.status is Status.RATED and agreed.rating is not None
    assert agreed.rating.category == "usually-appropriate" and agreed.rating.median is None
    differs = decide(record, order_codes("mri-w"))  # V2 May be, V4 Usually not
    assert differs.status is Status.AMBIGUOUS and differs.rating is None
    assert differs.inference is not None and differs.inference.deciding_facts == ("symptomatic",)


def test_alternatives_ranked_by_category_median_radiation() -> None:
    decision = decide(r.record_for_variant(2), order_codes("bone-scan-whole-body"))
    assert [a.procedure.id for a in decision.alternatives[:3]] == ["mri-wwo", "mri-wo", "ct-wo"]
    v1 = decide(r.record_for_variant(1), order_codes("bone-scan-whole-body"))
    assert [a.procedure.id for a in v1.alternatives] == ["mri-wo", "ct-wo"]  # MRI first: O beats ☢☢☢


def test_ties_break_by_the_variants_own_table_order() -> None:
    """Variant 4 lists MRI without and with contrast first: it leads when nothing else separates."""
    decision = decide(r.record_for_variant(4), order_codes("bone-scan-whole-body"))
    assert [a.procedure.id for a in decision.alternatives] == ["mri-wwo", "mri-wo", "ct-wo"]


def test_alternatives_keep_the_order_region() -> None:
    record = [*r.record_for_variant(1), condition("v2", "M48.54XA", recorded=r.days_ago(3))]
    decision = decide(record, [{"system": CPT, "code": "72130"}])  # CT thoracic w/o+w
    assert {a.item.id for a in decision.alternatives} >= {"mri-t-wo", "ct-t-wo"}


def test_usually_appropriate_order_has_no_alternatives_unless_a_median_separates() -> None:
    assert decide(r.record_for_variant(1), order_codes("ct-wo")).alternatives == ()
    v2 = decide(r.record_for_variant(2), order_codes("ct-wo"))
    assert [a.procedure.id for a in v2.alternatives] == ["mri-wwo"]


def test_mri_contraindication_removes_mri_and_flags_the_order() -> None:
    record = [*r.record_for_variant(2), condition("pm", "Z95.0")]
    ordered_mri = decide(record, order_codes("mri-wwo"))
    assert ordered_mri.contraindications == ("mri-contraindication",)
    assert [a.procedure.id for a in ordered_mri.alternatives] == ["ct-wo"]
    bone_scan = decide(record, order_codes("bone-scan-whole-body"))
    assert all(a.procedure.modality != "MRI" for a in bone_scan.alternatives)


def test_gadolinium_risk_removes_contrast_mri_only() -> None:
    record = [*r.record_for_variant(2), condition("d", "Z99.2")]
    ordered = decide(record, order_codes("mri-wwo"))
    assert ordered.contraindications == ("gadolinium-risk",)
    assert [a.procedure.id for a in ordered.alternatives] == ["mri-wo", "ct-wo"]


def test_study_of_another_region_is_not_rated() -> None:
    decision = decide(r.record_for_variant(1), [{"system": CPT, "code": "72141"}])  # cervical MRI, lumbar fracture
    assert decision.status is Status.REGION_MISMATCH


def test_unknown_order_region_takes_the_fracture_region() -> None:
    decision = decide(r.record_for_variant(1), [{"system": LOINC, "code": "36530-4"}])  # CT spine, region unsaid
    assert decision.status is Status.RATED and decision.region == {"lumbar"}
    assert decision.alternatives == ()
