"""Property-based: messy records never crash the engine, and a patient without a VCF is never rated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.engine.evaluate import default_engine
from cds_service.engine.rating import Status
from tests import records as r
from tests.factories import CPT, ICD10, ICD10CM, LOINC, SNOMED, read

ENGINE = default_engine()
K = ENGINE.knowledge
VCF_SETS = {"vcf-unspecified", "vcf-osteoporotic", "vcf-pathological", "vcf-pathological-neoplastic"}

VCF_CODES = ["M48.56XA", "M80.08XA", "M84.58XA", "M84.48XS", "42942008", "866087009", "203450003"]
OTHER_CODES = [
    "M54.50",
    "C79.51",
    "C50.911",
    "Z85.3",
    "D49.2",
    "G95.20",
    "Z95.0",
    "Z99.2",
    "M40.209",
    "S32.010A",
    "S22.000A",
    "207957008",
    "279039007",
    "94222008",
    "71286001",
    "I10",
    "E11.9",
    "",
    " ",
    "M48",
    "C",
    "garbage",
]
SYSTEMS = [ICD10CM, ICD10, SNOMED, CPT, LOINC, "http://example.org", "", None, 7]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
STATUS = st.sampled_from(["active", "resolved", "inactive", "remission", "recurrence", "bogus", None])
VERIFICATION = st.sampled_from(["confirmed", "provisional", "refuted", "entered-in-error", "unconfirmed", None])
TEXTS = st.sampled_from(
    [
        "",
        "no marrow edema",
        "worsening back pain",
        "asymptomatic",
        "pacemaker",
        "L1 T12 multiple fractures",
        "kyphosis",
        "not painful",
        "cord compression",
        "gadolinium allergy",
    ]
) | st.text(max_size=40)


def coding(codes: list[str]) -> st.SearchStrategy[Any]:
    good = st.fixed_dictionaries({"system": st.sampled_from(SYSTEMS), "code": st.sampled_from(codes)})
    return good | JSONISH


@st.composite
def conditions(draw: st.DrawFn, codes: list[str]) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": draw(st.text(min_size=1, max_size=6))}
    if draw(st.booleans()):
        resource["code"] = {"coding": draw(st.lists(coding(codes), max_size=3)), "text": draw(TEXTS)}
    else:
        resource["code"] = draw(JSONISH)
    for name, strategy in (("clinicalStatus", STATUS), ("verificationStatus", VERIFICATION)):
        value = draw(strategy)
        if value is not None:
            resource[name] = {"coding": [{"code": value}]} if draw(st.booleans()) else draw(JSONISH)
    for name in ("onsetDateTime", "recordedDate"):
        if draw(st.booleans()):
            resource[name] = draw(
                st.sampled_from([r.days_ago(3), r.days_ago(900), "2026", "2026-13-40", "x"]) | JSONISH
            )
    if draw(st.booleans()):
        resource["note"] = draw(st.lists(st.fixed_dictionaries({"text": TEXTS}) | JSONISH, max_size=2))
    if draw(st.booleans()):
        resource["bodySite"] = draw(JSONISH)
    return resource


ORDERS = [
    {"resourceType": "ServiceRequest", "id": f"o{i}", "code": {"coding": [{"system": c.system, "code": c.code}]}}
    for i, c in enumerate(item.codes[0] for item in K.catalog.items)
]


def evaluate(record: list[dict[str, Any]]) -> Any:
    return ENGINE.evaluate(
        read(record), orders_to_rate=ORDERS, draft_orders=ORDERS, today=r.TODAY, new_window=timedelta(weeks=12)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(VCF_CODES + OTHER_CODES), max_size=8))
def test_messy_condition_lists_never_crash_the_engine(record: list[dict[str, Any]]) -> None:
    evaluation = evaluate(record)
    assert len(evaluation.decisions) == len(ORDERS)
    for decision in evaluation.decisions:
        assert (decision.status is Status.RATED) == (decision.rating is not None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(OTHER_CODES), max_size=8))
def test_no_rating_ever_for_a_patient_without_a_vcf(record: list[dict[str, Any]]) -> None:
    evaluation = evaluate(record)
    assert evaluation.facts.vcf_current.value is False
    assert all(d.status is not Status.RATED for d in evaluation.decisions)


@settings(max_examples=100, deadline=None)
@given(st.lists(JSONISH, max_size=6))
def test_arbitrary_json_in_the_record_never_crashes(record: list[Any]) -> None:
    evaluate(
        [x if not isinstance(x, dict) else {**x, "resourceType": "Condition"} for x in record if isinstance(x, dict)]
    )
