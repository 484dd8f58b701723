"""Cards and system actions: CDS Hooks 2.0 structure, one test per card case (product-spec §3.4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.advice import HookCall, advise
from cds_service.protocol import HookResponse, OrderSelectContext, OrderSignContext
from cds_service.settings import Settings
from tests import records as r
from tests.factories import CPT, SNOMED, bundle, condition, read, service_request
from tests.spec_rules import assert_no_empty

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PAMA = "http://fhir.org/argonaut/Extension/pama-rating"
SETTINGS = Settings(feedback_db_path=":memory:")


def call(
    record: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    *,
    selections: list[str] | None = None,
    settings: Settings = SETTINGS,
) -> dict[str, Any]:
    """advise() for an order-sign call (or order-select with ``selections``); the response as JSON."""
    ctx: dict[str, Any] = {"userId": "Practitioner/1", "patientId": "p1", "draftOrders": bundle(orders)}
    if selections is not None:
        ctx["selections"] = selections
        context: OrderSignContext = OrderSelectContext.model_validate(ctx)
        chosen = [o for o in orders if f"ServiceRequest/{o['id']}" in selections]
    else:
        context = OrderSignContext.model_validate(ctx)
        chosen = orders
    advice = advise(
        HookCall("svc", str(uuid.uuid4()), context, chosen, read(record), NOW),
        settings,
    )
    body = orjson.loads(advice.response.to_json())  # the bytes the route sends
    assert body == advice.response.dump()
    check_spec_rules(body)
    return body


def check_spec_rules(body: dict[str, Any]) -> None:
    """CDS Hooks 2.0 response rules every answer must meet."""
    for card in body["cards"]:
        uuid.UUID(card["uuid"])
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["url"] and card["source"]["topic"]["code"]
        assert any("acsearch.acr.org" in link["url"] for link in card["links"])
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
            for suggestion in card["suggestions"]:
                uuid.UUID(suggestion["uuid"])
                for action in suggestion["actions"]:
                    assert action["description"]
                    if action["type"] in ("create", "update"):
                        ServiceRequest.model_validate(action["resource"])
                    else:
                        assert action["resourceId"].startswith("ServiceRequest/")
        if card["indicator"] in ("warning", "critical"):
            assert card["overrideReasons"] and all(reason["display"] for reason in card["overrideReasons"])
    for action in body.get("systemActions", []):
        assert action["type"] == "update" and action["description"]
        ServiceRequest.model_validate(action["resource"])
    assert body.get("extension", {}).get("systemActions", []) == body.get("systemActions", [])
    assert_no_empty(body)


def order(order_id: str, code: str, system: str = CPT, **kw: Any) -> dict[str, Any]:
    return service_request(order_id, codings=[{"system": system, "code": code}], **kw)


def rating_of(body: dict[str, Any], order_id: str) -> str | None:
    for action in body.get("systemActions", []):
        if action["resource"]["id"] == order_id:
            ext = next(e for e in action["resource"]["extension"] if e["url"] == PAMA)
            code: str = ext["valueCodeableConcept"]["coding"][0]["code"]
            return code
    return None


def suggested_codes(card: dict[str, Any]) -> list[str]:
    return [
        action["resource"]["code"]["coding"][0]["code"]
        for suggestion in card["suggestions"]
        for action in suggestion["actions"]
        if action["type"] != "delete"
    ]


# ---------------------------------------------------------------------------------------------- ratings


def test_rating_goes_in_system_actions_with_all_pama_extensions() -> None:
    """Spec §2 Rating: update of the draft, unchanged but for the Argonaut PAMA extensions."""
    draft = order("sr1", "72131", reasonCode=[{"coding": [{"system": SNOMED, "code": "279039007"}]}])
    body = call(r.record_for_variant(2), [draft])
    (action,) = body["systemActions"]
    resource = action["resource"]
    urls = [e["url"] for e in resource["extension"]]
    assert urls == [
        PAMA,
        "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted",
        "http://fhir.org/argonaut/Extension/pama-rating-consult-id",
        "http://fhir.org/argonaut/Extension/pama-rating-auc-applied",
    ]
    coding = resource["extension"][0]["valueCodeableConcept"]["coding"]
    assert coding[0] == {"system": "http://fhir.org/argonaut/CodeSystem/pama-rating", "code": "appropriate"}
    assert coding[1]["code"] == "usually-appropriate" and "median 7" in coding[1]["display"]
    assert coding[2]["code"] == "7"
    assert resource["extension"][2]["valueUri"].startswith("urn:uuid:")
    assert resource["extension"][1]["valueString"] == SETTINGS.qcdsm_id
    assert {k: v for k, v in resource.items() if k != "extension"} == draft


def test_usually_not_appropriate_is_not_appropriate_and_may_be_is_appropriate() -> None:
    body = call(r.record_for_variant(1), [order("a", "72158"), order("b", "78306")])
    assert rating_of(body, "a") == "not-appropriate"  # MRI w/o+w in variant 1
    assert rating_of(body, "b") == "appropriate"  # bone scan: May be appropriate


def test_existing_pama_extensions_are_replaced_not_duplicated() -> None:
    stale = {"url": PAMA, "valueCodeableConcept": {"coding": [{"code": "not-appropriate"}]}}
    other = {"url": "http://example.org/other", "valueString": "kept"}
    body = call(r.record_for_variant(1), [order("a", "72148", extension=[stale, other])])
    extensions = body["systemActions"][0]["resource"]["extension"]
    assert [e["url"] for e in extensions].count(PAMA) == 1
    assert other in extensions


# ---------------------------------------------------------------------------------------------- card cases


def test_best_order_gets_no_card_but_keeps_its_rating() -> None:
    body = call(r.record_for_variant(1), [order("a", "72148")])
    assert body["cards"] == []
    assert rating_of(body, "a") == "appropriate"


def test_lower_rated_imaging_gets_a_warning_with_replacing_updates() -> None:
    body = call(r.record_for_variant(1), [order("a", "78306")])
    (card,) = body["cards"]
    assert card["indicator"] == "warning" and card["selectionBehavior"] == "at-most-one"
    assert "May be appropriate" in card["summary"]
    assert suggested_codes(card) == ["72148", "72131"]  # MRI w/o (no radiation) before CT w/o
    first, second = card["suggestions"]
    assert first["isRecommended"] is True and "isRecommended" not in second
    action = first["actions"][0]
    assert action["type"] == "update" and action["resource"]["id"] == "a"
    assert action["resource"]["status"] == "draft"
    assert action["resource"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "appropriate"


def test_variant_2_ct_or_mri_without_contrast_gets_info_for_mri_with_and_without() -> None:
    """Spec §3.4: Usually appropriate but a higher-rated option exists: info card."""
    for code in ("72131", "72148"):
        body = call(r.record_for_variant(2), [order("a", code)])
        (card,) = body["cards"]
        assert card["indicator"] == "info"
        assert suggested_codes(card) == ["72158"]
        assert (
            "| Suggested | MRI lumbar spine without and with IV contrast | Usually appropriate | 9 |" in card["detail"]
        )


def test_equal_usually_appropriate_options_do_not_warn() -> None:
    """Variant 4: MRI and CT are all Usually appropriate with no published median; no card."""
    body = call(r.record_for_variant(4), [order("a", "72131")])
    assert body["cards"] == []


def test_suggestion_keeps_patient_encounter_requester_and_reasons() -> None:
    draft = order(
        "a",
        "78306",
        encounter={"reference": "Encounter/e1"},
        requester={"reference": "Practitioner/9"},
        reasonCode=[{"coding": [{"system": SNOMED, "code": "279039007"}]}],
        reasonReference=[{"reference": "Condition/vcf"}],
    )
    card = call(r.record_for_variant(1), [draft])["cards"][0]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    for name in ("subject", "encounter", "requester", "reasonCode", "reasonReference", "intent"):
        assert resource[name] == draft[name]
    assert resource["code"]["coding"][0] == {"system": CPT, "code": "72148"}
    assert {c["system"] for c in resource["code"]["coding"]} == {CPT, "http://loinc.org", "http://www.radlex.org"}


def test_delete_create_mode_replaces_by_resource_id() -> None:
    settings = Settings(feedback_db_path=":memory:", suggestion_mode="delete-create")
    card = call(r.record_for_variant(1), [order("a", "78306")], settings=settings)["cards"][0]
    delete, create = card["suggestions"][0]["actions"]
    assert delete == {"type": "delete", "description": "Remove the draft order", "resourceId": "ServiceRequest/a"}
    assert create["type"] == "create" and create["resource"]["id"] != "a"
    assert create["resource"]["subject"] == {"reference": "Patient/p1"}


def test_painful_pathological_fracture_with_pain_referral_suggests_each_consult() -> None:
    """Spec §3.4: warning with one create suggestion per Usually appropriate consult, selectionBehavior any."""
    body = call(r.record_for_variant(9), [order("a", "306265007", SNOMED)])
    (card,) = body["cards"]
    assert card["indicator"] == "warning" and card["selectionBehavior"] == "any"
    assert sorted(suggested_codes(card)) == sorted(["306299005", "306256000", "308482002"])
    for suggestion in card["suggestions"]:
        (action,) = suggestion["actions"]
        assert action["type"] == "create" and action["resource"]["status"] == "draft"
        assert action["resource"]["extension"][0]["url"] == PAMA
    assert rating_of(body, "a") == "appropriate"  # May be appropriate


def test_consults_already_drafted_are_not_suggested_again() -> None:
    drafts = [order("a", "306265007", SNOMED), order("b", "306256000", SNOMED)]
    body = call(r.record_for_variant(9), drafts)
    (card,) = body["cards"]
    assert "306256000" not in suggested_codes(card)


def test_mri_contraindication_suggests_ct_without_contrast() -> None:
    record = [*r.record_for_variant(1), condition("pm", "Z95.0", text="Cardiac pacemaker")]
    (card,) = call(record, [order("a", "72148")])["cards"]
    assert card["indicator"] == "warning"
    assert "Cardiac pacemaker" in card["summary"]
    assert suggested_codes(card) == ["72131"]
    assert any(reason["code"] == "contraindication-not-applicable" for reason in card["overrideReasons"])


def test_gadolinium_risk_suggests_mri_without_contrast_and_says_why() -> None:
    record = [*r.record_for_variant(2), r.observation("egfr", "eGFR", code="98979-8", value=21)]
    (card,) = call(record, [order("a", "72158")])["cards"]
    assert card["indicator"] == "warning"
    assert "gadolinium" in card["summary"].lower() and "eGFR 21" in card["summary"]
    assert suggested_codes(card) == ["72148", "72131"]


def test_cord_compression_is_critical_whatever_was_ordered() -> None:
    record = [*r.record_for_variant(1), condition("cc", "G95.20", text="Cord compression")]
    body = call(record, [order("a", "72148"), order("b", "73721")])  # MRI lumbar, knee MRI
    critical = [c for c in body["cards"] if c["indicator"] == "critical"]
    assert len(critical) == 1
    card = critical[0]
    assert card["selectionBehavior"] == "any"
    # An MRI of the spine is already drafted, so only the urgent surgery consult is suggested.
    assert suggested_codes(card) == ["308482002"]
    assert card["suggestions"][0]["actions"][0]["resource"]["priority"] == "stat"


def test_red_flag_suggests_urgent_mri_when_none_is_drafted() -> None:
    record = [*r.record_for_variant(1), condition("cc", "G95.20")]
    body = call(record, [order("a", "73721")])  # knee MRI only
    (card,) = body["cards"]
    assert card["indicator"] == "critical"
    assert suggested_codes(card) == ["72148", "308482002"]
    for suggestion in card["suggestions"]:
        resource = suggestion["actions"][0]["resource"]
        assert resource["reasonReference"] == [{"reference": "Condition/cc"}]
        assert resource["subject"] == {"reference": "Patient/p1"}


def test_red_flag_still_suggests_urgent_mri_when_only_ct_is_drafted() -> None:
    record = [*r.record_for_variant(1), condition("cc", "G95.20")]
    card = next(c for c in call(record, [order("a", "72131")])["cards"] if c["indicator"] == "critical")
    assert suggested_codes(card) == ["72148", "308482002"]


def test_red_flag_with_mri_contraindication_suggests_ct() -> None:
    record = [*r.record_for_variant(1), condition("cc", "G95.20"), condition("pm", "Z95.0")]
    card = next(c for c in call(record, [order("a", "73721")])["cards"] if c["indicator"] == "critical")
    assert suggested_codes(card) == ["72131", "308482002"]


def test_better_option_already_ordered_suggests_removing_the_lower_rated_draft() -> None:
    """Variant 8: medical management beside an augmentation (the best option, already ordered)."""
    drafts = [order("a", "306265007", SNOMED), order("b", "22514")]
    body = call(r.record_for_variant(8), drafts)
    (card,) = body["cards"]
    remove, surgery = card["suggestions"]
    assert remove["isRecommended"] is True
    assert remove["actions"] == [{"type": "delete", "description": remove["label"], "resourceId": "ServiceRequest/a"}]
    assert "already ordered" in remove["label"] and "already ordered" in card["summary"]
    assert surgery["actions"][0]["resource"]["code"]["coding"][0]["code"] == "308482002"


def test_remove_comes_after_replacements_when_the_best_option_is_not_yet_ordered() -> None:
    """Variant 3: PET/CT beside a CT; the best option (MRI without contrast) is not ordered yet."""
    record = r.record_for_variant(3)
    body = call(record, [order("a", "78815"), order("b", "72131")])
    (card,) = body["cards"]
    assert [s["actions"][0]["type"] for s in card["suggestions"]] == ["update", "delete"]
    assert suggested_codes(card) == ["72148"]


def test_ambiguity_gets_an_info_card_naming_the_missing_fact() -> None:
    record = [r.lumbar_vcf("icd"), r.cancer("icd")]  # symptoms undocumented
    body = call(record, [order("a", "72149")])  # MRI with contrast: V2 May be, V4 Usually not
    (card,) = body["cards"]
    assert card["indicator"] == "info" and "symptomatic" in card["summary"]
    assert "Variant 2" in card["detail"] and "Variant 4" in card["detail"]
    assert "suggestions" not in card and "overrideReasons" not in card
    assert "systemActions" not in body


def test_study_of_the_wrong_region_gets_an_info_card_with_the_right_region() -> None:
    (card,) = call(r.record_for_variant(1), [order("a", "72141")])["cards"]  # cervical MRI, lumbar fracture
    assert card["indicator"] == "info"
    assert suggested_codes(card) == ["72148"]


@pytest.mark.parametrize(
    "record",
    [
        [condition("t", "S32.010A", recorded=r.days_ago(2)), r.back_pain("icd")],
        [r.back_pain("icd")],
        [],
    ],
    ids=["traumatic", "no-vcf", "empty"],
)
def test_silence_where_no_variant_fits(record: list[dict[str, Any]]) -> None:
    assert call(record, [order("a", "72148")]) == {"cards": []}


def test_order_outside_the_topic_is_left_alone() -> None:
    assert call(r.record_for_variant(2), [order("a", "73721")]) == {"cards": []}


# ---------------------------------------------------------------------------------------- several orders


def test_order_select_rates_only_the_selected_order() -> None:
    orders = [order("a", "78306"), order("b", "72133")]
    body = call(r.record_for_variant(1), orders, selections=["ServiceRequest/a"])
    assert [a["resource"]["id"] for a in body["systemActions"]] == ["a"]
    assert len(body["cards"]) == 1


def test_order_sign_rates_every_order() -> None:
    body = call(r.record_for_variant(1), [order("a", "78306"), order("b", "72133")])
    assert sorted(a["resource"]["id"] for a in body["systemActions"]) == ["a", "b"]
    assert len(body["cards"]) == 2
    targets = {c["suggestions"][0]["actions"][0]["resource"]["id"] for c in body["cards"]}
    assert targets == {"a", "b"}


def test_the_same_advice_is_not_repeated_for_several_orders() -> None:
    record = [r.lumbar_vcf("icd"), r.cancer("icd"), condition("cc", "G95.20")]
    body = call(record, [order("a", "72149"), order("b", "72142"), order("c", "78306")])
    kinds = [(c["indicator"], c["summary"].split(":")[0]) for c in body["cards"]]
    assert sum(1 for c in body["cards"] if c["indicator"] == "critical") == 1
    ambiguous = [c for c in body["cards"] if "needs one fact" in c["summary"]]
    assert len(ambiguous) == 1, kinds


def test_every_card_and_suggestion_has_a_fresh_uuid() -> None:
    first = call(r.record_for_variant(1), [order("a", "78306")])
    second = call(r.record_for_variant(1), [order("a", "78306")])
    ids = [
        x
        for body in (first, second)
        for card in body["cards"]
        for x in [card["uuid"], *(s["uuid"] for s in card["suggestions"])]
    ]
    assert len(ids) == len(set(ids))


def test_an_answer_with_no_cards_still_sends_an_empty_cards_list() -> None:
    """CDS Hooks 2.0: "cards: REQUIRED. An array of Cards. Cards can be an empty array." """
    assert HookResponse().to_json() == b'{"cards":[]}'
