"""Cards and system actions from the engine's decisions (product-spec §2 Response and Rating, §3.4).

One ``CardBuilder`` per hook call. Each rated order gets a PAMA ``update`` system action; cards
follow product-spec §3.4, and the same advice is never given twice in one response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from cards.ids import new_card_uuid, new_uuid
from cds_service.engine.evaluate import Engine, Evaluation
from cds_service.engine.facts import PatientFacts
from cds_service.engine.fhir import codings, reference_of
from cds_service.engine.rating import Option, OrderDecision, Status
from cds_service.feedback_store import IssuedCard
from cds_service.knowledge import Knowledge
from cds_service.knowledge.models import CatalogItem
from cds_service.protocol import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

from . import text
from .orders import new_order, replacement
from .pama import PamaContext, rating_extensions, with_rating

CardKind = Literal[
    "lower-rated",
    "higher-rated-available",
    "consults",
    "mri-contraindication",
    "gadolinium-risk",
    "red-flag",
    "ambiguous",
    "region-mismatch",
]
MAX_REPLACEMENTS = 3
RED_FLAG_FACTS = ("vcf_current", "vcf_history", "neurologic_deficit", "mri_contraindication")


@dataclass(frozen=True)
class CallContext:
    """What the builder needs to know about the hook call."""

    service_id: str
    hook_instance: str
    patient_reference: str
    draft_orders: tuple[dict[str, Any], ...]
    suggestion_mode: Literal["update", "delete-create"]
    code_system_base: str
    qcdsm_id: str
    now: datetime


@dataclass
class BuiltResponse:
    cards: list[Card] = field(default_factory=list)
    system_actions: list[Action] = field(default_factory=list)
    issued: list[IssuedCard] = field(default_factory=list)


class CardBuilder:
    """Builds one response's cards, system actions and issued-card records."""

    def __init__(self, engine: Engine, call: CallContext) -> None:
        self._engine = engine
        self._k = engine.knowledge
        self._call = call
        self._pama = PamaContext(self._k, call.qcdsm_id, call.code_system_base)
        self._out = BuiltResponse()
        self._given: set[tuple[Any, ...]] = set()

    def build(self, evaluation: Evaluation) -> BuiltResponse:
        facts = evaluation.facts
        self._red_flag(facts, evaluation.decisions)
        for decision in evaluation.decisions:
            if decision.status is Status.RATED:
                self._system_action(decision)
                self._rated_card(decision, facts)
            elif decision.status is Status.AMBIGUOUS:
                self._ambiguity_card(decision, facts)
            elif decision.status is Status.REGION_MISMATCH:
                self._region_card(decision, facts)
        return self._out

    # ------------------------------------------------------------------------------ system actions

    def _system_action(self, decision: OrderDecision) -> None:
        if not isinstance(decision.order.get("id"), str) or decision.rating is None or decision.inference is None:
            return
        rated = with_rating(decision.order, rating_extensions(decision.rating, decision.inference.variants, self._pama))
        self._out.system_actions.append(
            Action(
                type="update", description="Record the ACR appropriateness rating (PAMA) on the order", resource=rated
            )
        )

    # ------------------------------------------------------------------------------ rated orders

    def _rated_card(self, decision: OrderDecision, facts: PatientFacts) -> None:
        assert decision.rating is not None and decision.inference is not None and decision.item is not None
        alternatives = decision.alternatives
        if decision.contraindications:
            self._contraindication_card(decision, facts)
            return
        best = [a for a in alternatives if a.rating.rank == 3]
        if decision.rating.rank < 3 and best:
            phase = self._k.procedures[decision.item.procedure].phase
            consult_variants = set(self._k.rules.consult_card_variants)
            if phase == "treatment" and set(decision.inference.variants) <= consult_variants:
                drafted = self._drafted_procedures(excluding=decision.reference)
                self._consults_card(decision, facts, [a for a in best if a.procedure.id not in drafted])
            else:
                self._replace_card(decision, facts, best[:MAX_REPLACEMENTS], "lower-rated", "warning")
        elif alternatives:
            self._replace_card(decision, facts, alternatives[:1], "higher-rated-available", "info")

    def _replace_card(
        self,
        decision: OrderDecision,
        facts: PatientFacts,
        options: list[Option] | tuple[Option, ...],
        kind: CardKind,
        indicator: Literal["info", "warning"],
    ) -> None:
        assert decision.rating is not None and decision.item is not None and decision.inference is not None
        ordered = text.short(decision.item.display)
        category = text.category_label(self._k, decision.rating)
        where = "/".join(str(v) for v in decision.inference.variants)
        suggestions, headline = self._offers(decision, options)
        if kind == "lower-rated":
            summary = f"{ordered} is '{category}' (ACR VCF variant {where}); consider {headline}"
        else:
            summary = f"{headline} rates higher than {ordered} (ACR VCF variant {where})"
        detail = self._detail(decision, facts, options, lead=self._lead(decision, facts, kind))
        key = (kind, decision.reference)
        self._emit(kind, indicator, summary, detail, decision, suggestions, "at-most-one", key=key)

    def _contraindication_card(self, decision: OrderDecision, facts: PatientFacts) -> None:
        assert decision.item is not None and decision.rating is not None
        name = decision.contraindications[0]
        kind: CardKind = "mri-contraindication" if name == "mri-contraindication" else "gadolinium-risk"
        rule = self._k.rules.contraindications[name]
        why = facts.finding(rule.fact)
        reason, explained = rule.reason, rule.explained
        options = decision.alternatives[:2]
        proof = ", ".join(e.summary for e in why.evidence[:2])
        suggestions, headline = self._offers(decision, options)
        instead = f"; consider {headline}" if options else ""
        summary = f"{text.short(decision.item.display)}: {reason} ({proof}){instead}"
        category = text.category_label(self._k, decision.rating)
        lead = f"The ordered study is {category} for this variant, but {explained}: {proof}."
        detail = self._detail(decision, facts, options, lead=lead)
        key = (kind, decision.reference)
        self._emit(kind, "warning", summary, detail, decision, suggestions, "at-most-one", key=key)

    def _offers(self, decision: OrderDecision, options: Sequence[Option]) -> tuple[list[Suggestion], str]:
        """Suggestions that replace the draft with each option not yet ordered, plus one that removes the
        draft when an option is already ordered in another draft (first when that option is the best).
        Also the headline of the best option for the summary."""
        if not options:
            return [], ""
        drafted = self._drafted_procedures(excluding=decision.reference)
        fresh = [o for o in options if o.procedure.id not in drafted]
        already = [drafted[o.procedure.id] for o in options if o.procedure.id in drafted]
        suggestions = [self._replace_suggestion(decision, o) for o in fresh]
        best_is_ordered = options[0].procedure.id in drafted
        if already:
            remove = self._remove_suggestion(decision, already[0])
            suggestions.insert(0 if best_is_ordered else len(suggestions), remove)
        suggestions[0] = suggestions[0].model_copy(update={"isRecommended": True})
        if best_is_ordered:
            return suggestions, f"{text.short(already[0].display)} (already ordered)"
        return suggestions, text.short(options[0].item.display)

    def _consults_card(self, decision: OrderDecision, facts: PatientFacts, best: list[Option]) -> None:
        assert decision.item is not None and decision.rating is not None
        consults: dict[str, Option] = {}
        for option in best:
            consults.setdefault(option.item.id, option)
        if not consults or ("consults",) in self._given:
            return
        names = ", ".join(o.item.display.split(" (")[0].lower() for o in consults.values())
        summary = (
            f"Painful pathological VCF: {text.short(decision.item.display)} is "
            f"'{text.category_label(self._k, decision.rating)}'; consider {names}"
        )
        lead = (
            "For a pathological fracture with ongoing or increasing pain, ACR rates multidisciplinary "
            "consultation Usually appropriate: radiation oncology, spine surgery, and interventional radiology "
            "for vertebral augmentation or ablation."
        )
        detail = self._detail(decision, facts, list(consults.values()), lead=lead)
        suggestions = [
            self._create_suggestion(decision.order, o.item, self._extensions(o, decision), f"Order {o.item.display}")
            for o in consults.values()
        ]
        self._emit("consults", "warning", summary, detail, decision, suggestions, "any", key=("consults",))

    # ------------------------------------------------------------------------------ other cards

    def _red_flag(self, facts: PatientFacts, decisions: tuple[OrderDecision, ...]) -> None:
        flag = self._k.rules.red_flag
        has_fracture = facts.vcf_current.value or facts.vcf_history.value
        if not (facts.finding(flag.fact).value and has_fracture and decisions):
            return
        region = facts.fracture_region or frozenset({"cervical", "thoracic", "lumbar"})
        drafted = self._drafted_procedures()
        study_id = flag.imaging
        for name, instead in flag.imaging_when_contraindicated.items():
            if facts.finding(self._k.rules.contraindications[name].fact).value:
                study_id = instead
        suggestions = []
        # The urgent orders cite the deficit, not the reasons of whatever order was being placed.
        first = decisions[0].order
        template: dict[str, Any] = {k: first[k] for k in ("encounter", "requester") if k in first}
        deficit = [{"reference": e.reference} for e in facts.neurologic_deficit.evidence if "#" not in e.reference]
        if deficit:
            template["reasonReference"] = deficit
        # An urgent study of the same modality already drafted (any contrast) makes the suggestion moot.
        modality = self._k.procedures[study_id].modality
        if not any(self._k.procedures[p].modality == modality for p in drafted):
            study = self._engine.rater.orderable(self._k.procedures[study_id], region)
            if study is not None:
                suggestions.append(
                    self._create_suggestion(template, study, [], f"Order urgent {study.display}", "stat")
                )
        if flag.consult not in drafted:
            consult = self._engine.rater.orderable(self._k.procedures[flag.consult], region)
            if consult is not None:
                suggestions.append(
                    self._create_suggestion(template, consult, [], f"Order urgent {consult.display}", "stat")
                )
        proof = "; ".join(e.summary for e in facts.neurologic_deficit.evidence[:2])
        summary = f"Neurologic deficit with vertebral fracture ({proof}): urgent MRI and spine surgery consultation"
        detail = "\n".join(
            [
                "**Red flag.** A vertebral compression fracture with a neurologic deficit or cord compression needs "
                "urgent imaging (MRI; CT without contrast when MRI is contraindicated) and spine surgery "
                "consultation, whatever was ordered.",
                "",
                *text.evidence_lines(facts, RED_FLAG_FACTS),
                "",
                text.source_line(self._k),
            ]
        )
        self._emit("red-flag", "critical", summary, detail, decisions[0], suggestions, "any", key=("red-flag",))

    def _ambiguity_card(self, decision: OrderDecision, facts: PatientFacts) -> None:
        assert decision.inference is not None and decision.item is not None
        asks = text.questions(decision)
        key = ("ambiguous", decision.inference.deciding_facts)
        if not asks or key in self._given:
            return
        summary = f"ACR rating of {text.short(decision.item.display)} needs one fact: document {asks[0]}"
        rows = []
        for v in decision.inference.variants:
            row = self._k.variants[v].rating_of(decision.item.procedure)
            rating = self._k.acr.categories[row.category].display if row else "not listed"
            rows.append(f"- Variant {v} ({self._k.variants[v].title}): {rating}")
        if None in decision.inference.candidates:
            rows.append("- Or no variant of this topic applies, and the order is not rated.")
        detail = "\n".join(
            [
                "The record leaves more than one ACR variant open, and they rate this order differently, so no "
                "rating was recorded. Documenting the following would decide it:",
                "",
                *[f"- {q}" for q in asks],
                "",
                f"How **{text.short(decision.item.display)}** rates under each open possibility:",
                "",
                *rows,
                "",
                "**What the record shows**",
                "",
                *text.evidence_lines(facts),
                "",
                text.source_line(self._k),
            ]
        )
        self._emit("ambiguous", "info", summary, detail, decision, [], None, key=key)

    def _region_card(self, decision: OrderDecision, facts: PatientFacts) -> None:
        assert decision.item is not None and decision.inference is not None
        procedure = self._k.procedures[decision.item.procedure]
        fracture = ", ".join(sorted(facts.fracture_region))
        summary = f"{text.short(decision.item.display)} does not include the fractured region ({fracture})"
        suggestions = []
        target = self._engine.rater.orderable(procedure, facts.fracture_region)
        rating = self._engine.rater.rating_for(procedure.id, decision.inference)
        if target is not None and rating is not None:
            option = Option(procedure, rating, procedure.rrl, target)
            suggestions.append(self._replace_suggestion(decision, option).model_copy(update={"isRecommended": True}))
        detail = "\n".join(
            [
                f"The fracture is in the {fracture} spine; the ordered study covers "
                f"{', '.join(decision.item.region or [])}. ACR rates studies of the fractured region only.",
                "",
                *text.evidence_lines(facts, ["vcf_current", "vcf_history"]),
                "",
                text.source_line(self._k),
            ]
        )
        self._emit(
            "region-mismatch",
            "info",
            summary,
            detail,
            decision,
            suggestions,
            "at-most-one",
            key=("region-mismatch", decision.reference),
        )

    # ------------------------------------------------------------------------------ pieces

    def _lead(self, decision: OrderDecision, facts: PatientFacts, kind: CardKind) -> str:
        assert decision.rating is not None
        category = text.category_label(self._k, decision.rating)
        if kind == "lower-rated":
            return f"The ordered option is **{category}** for this patient; Usually appropriate options exist."
        return f"The ordered option is **{category}**, and a higher-rated option exists" + (
            " (MRI without and with IV contrast is preferred when malignancy is in play)."
            if facts.malignancy.value
            else "."
        )

    def _detail(
        self, decision: OrderDecision, facts: PatientFacts, options: list[Option] | tuple[Option, ...], *, lead: str
    ) -> str:
        assert decision.item is not None and decision.inference is not None
        rows: list[tuple[str, str, Any, str | None]] = [
            ("Ordered", decision.item.display, decision.rating, decision.radiation)
        ]
        rows += [("Suggested", o.item.display, o.rating, o.radiation) for o in options]
        head, tail = _detail_frame(self._k, lead, decision.inference.variants, tuple(rows))
        return "\n".join([head, *text.evidence_lines(facts), tail])

    def _extensions(self, option: Option, decision: OrderDecision) -> list[dict[str, Any]]:
        variants = decision.inference.variants if decision.inference else ()
        return rating_extensions(option.rating, variants, self._pama)

    def _replace_suggestion(self, decision: OrderDecision, option: Option) -> Suggestion:
        extensions = self._extensions(option, decision)
        label = f"Order {option.item.display} instead"
        order_id = decision.order.get("id")
        if self._call.suggestion_mode == "update" and isinstance(order_id, str):
            actions = [
                Action(
                    type="update",
                    description=f"Change the draft order to {option.item.display}",
                    resource=replacement(decision.order, option.item, extensions, keep_id=True),
                )
            ]
        else:
            actions = []
            if isinstance(order_id, str):
                actions.append(
                    Action(type="delete", description="Remove the draft order", resourceId=f"ServiceRequest/{order_id}")
                )
            actions.append(
                Action(
                    type="create",
                    description=f"Order {option.item.display}",
                    resource=replacement(decision.order, option.item, extensions, keep_id=False),
                )
            )
        return Suggestion(label=label, uuid=new_uuid(), actions=actions)

    def _remove_suggestion(self, decision: OrderDecision, kept: CatalogItem) -> Suggestion:
        assert decision.item is not None
        label = f"Remove {decision.item.display}: {kept.display} is already ordered"
        action = Action(type="delete", description=label, resourceId=decision.reference)
        return Suggestion(label=label, uuid=new_uuid(), actions=[action])

    def _create_suggestion(
        self,
        template: dict[str, Any],
        item: CatalogItem,
        extensions: list[dict[str, Any]],
        label: str,
        priority: str | None = None,
    ) -> Suggestion:
        resource = new_order(
            template, item, extensions, patient_reference=self._call.patient_reference, priority=priority
        )
        return Suggestion(
            label=label,
            uuid=new_uuid(),
            isRecommended=True,
            actions=[Action(type="create", description=label, resource=resource)],
        )

    def _drafted_procedures(self, excluding: str | None = None) -> dict[str, CatalogItem]:
        """Procedures of the session's draft orders (other than ``excluding``), with the item ordered."""
        found: dict[str, CatalogItem] = {}
        for order in self._call.draft_orders:
            if excluding is not None and reference_of(order) == excluding:
                continue
            item = self._engine.terminology.catalog_item(codings(order.get("code")))
            if item is not None:
                found.setdefault(item.procedure, item)
        return found

    def _emit(
        self,
        kind: CardKind,
        indicator: Literal["info", "warning", "critical"],
        summary: str,
        detail: str,
        decision: OrderDecision,
        suggestions: list[Suggestion],
        selection: Literal["at-most-one", "any"] | None,
        *,
        key: tuple[Any, ...],
    ) -> None:
        if key in self._given:
            return
        self._given.add(key)
        source, links = _source_and_links(self._k, self._call.code_system_base)
        card = Card(
            uuid=new_card_uuid(),
            summary=text.fit(summary),
            detail=detail,
            indicator=indicator,
            source=source,
            suggestions=suggestions or None,
            selectionBehavior=selection if suggestions else None,
            overrideReasons=_override_reasons(self._k, self._call.code_system_base, kind)
            if indicator in ("warning", "critical")
            else None,
            links=links,
        )
        self._out.cards.append(card)
        variants = decision.inference.variants if decision.inference else ()
        first = codings(decision.order.get("code"))
        self._out.issued.append(
            IssuedCard(
                card_uuid=card.uuid or "",
                service_id=self._call.service_id,
                hook_instance=self._call.hook_instance,
                card_kind=kind,
                indicator=indicator,
                variant=variants[0] if len(variants) == 1 else None,
                order_code=f"{first[0].system}|{first[0].code}" if first else None,
                suggestion_uuids=tuple(s.uuid for s in suggestions if s.uuid),
                issued_at=self._call.now,
            )
        )


@lru_cache(maxsize=1024)
def _detail_frame(
    k: Knowledge, lead: str, variants: tuple[int, ...], rows: tuple[tuple[str, str, Any, str | None], ...]
) -> tuple[str, str]:
    """A card's detail around its patient's evidence: the lead, variants and options table before it, the
    source after it. They come from a small set (a lead, a variant, an order and its options), so they
    are written once, not per call."""
    head = "\n".join(
        [
            lead,
            "",
            *text.variant_lines(k, variants),
            "",
            *text.options_table(k, list(rows)),
            "",
            "**Why this variant**",
            "",
        ]
    )
    return head, "\n" + text.source_line(k)


# What every card of a kind carries, made once (validated models, shared between responses and never
# modified): four models validated per card cost ~5 µs.
@lru_cache(maxsize=16)
def _source_and_links(k: Knowledge, code_system_base: str) -> tuple[Source, list[Link]]:
    topic = k.acr.topic
    source = Source(
        label=f"ACR Appropriateness Criteria ({topic.version})",
        url=topic.url,
        topic=Coding(system=f"{code_system_base}/acr-topic", code=topic.id, display=topic.title),
    )
    return source, [
        Link(label="ACR Appropriateness Criteria: VCF narrative and ratings", url=topic.url, type="absolute")
    ]


@lru_cache(maxsize=64)
def _override_reasons(k: Knowledge, code_system_base: str, kind: CardKind) -> list[OverrideReason]:
    return [
        OverrideReason(system=f"{code_system_base}/override-reason", code=r.code, display=r.display)
        for code in k.override_reasons.by_card_kind[kind]
        for r in k.override_reasons.reasons
        if r.code == code
    ]
