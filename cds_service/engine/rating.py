"""Rate one order: its procedure, the variant, the ACR category, and better options (product-spec §3.3).

An order is rated only when every candidate variant lists its procedure with the same category;
otherwise it stays unrated and the deciding missing fact is named. Alternatives are the procedures
better rated than the order in every candidate variant, in the order's region, ranked by category,
then median, then radiation, then ACR table order, minus what the patient's contraindications rule
out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ..knowledge import Knowledge
from ..knowledge.models import CatalogItem, CategoryCode, Procedure, RatingRow
from .facts import PatientFacts
from .fhir import codings, reference_of
from .terminology import Region, Terminology
from .variants import Inference, infer_variant


class Status(Enum):
    OUT_OF_TOPIC = "out-of-topic"  # not a procedure of this ACR topic (or no usable code)
    NO_VARIANT = "no-variant"  # the patient fits no variant (no VCF, traumatic, ...)
    NOT_LISTED = "not-listed"  # the variant does not rate this procedure
    REGION_MISMATCH = "region-mismatch"  # the study does not cover the fractured region
    AMBIGUOUS = "ambiguous"  # open facts leave variants that rate it differently
    RATED = "rated"


@dataclass(frozen=True)
class Rating:
    category: CategoryCode
    median: int | None
    rank: int


@dataclass(frozen=True)
class Option:
    """A procedure as an option for this patient: its rating here and the catalog item to order it."""

    procedure: Procedure
    rating: Rating
    radiation: str | None
    item: CatalogItem


@dataclass(frozen=True)
class OrderDecision:
    order: dict[str, Any]
    reference: str
    status: Status
    item: CatalogItem | None = None
    inference: Inference | None = None
    rating: Rating | None = None
    radiation: str | None = None
    region: Region = frozenset()
    alternatives: tuple[Option, ...] = ()
    contraindications: tuple[str, ...] = ()

    @property
    def procedure_id(self) -> str | None:
        return self.item.procedure if self.item else None


class Rater:
    """Rates orders against the knowledge base for one patient's facts."""

    def __init__(self, knowledge: Knowledge, terminology: Terminology) -> None:
        self._k = knowledge
        self._term = terminology
        # Ratings and options are functions of the knowledge and a few small keys (procedure, candidate
        # variants, region, contraindications present), all drawn from the knowledge, so the memos stay
        # small; a rated order weighs every other procedure of its phase, a dozen ratings each time.
        self._ratings: dict[tuple[str, frozenset[int | None]], Rating | None] = {}
        self._options: dict[tuple[Any, ...], tuple[Option, ...]] = {}

    def decide(self, order: dict[str, Any], facts: PatientFacts) -> OrderDecision:
        """The decision for one draft order."""
        reference = reference_of(order)
        item = self._term.catalog_item(codings(order.get("code")))
        if item is None:
            return OrderDecision(order, reference, Status.OUT_OF_TOPIC)
        procedure = self._k.procedures[item.procedure]
        inference = infer_variant(facts, procedure.phase, self._k.rules.variant_rules)
        region = frozenset(item.region) if item.region else facts.fracture_region
        base = OrderDecision(order, reference, Status.NO_VARIANT, item=item, inference=inference, region=region)
        if not inference.variants:
            return base
        if procedure.regional and item.region and facts.fracture_region and not region & facts.fracture_region:
            return replace(base, status=Status.REGION_MISMATCH)
        rating = self.rating_for(procedure.id, inference)
        if rating is None:
            listed = any(self._k.variants[v].rating_of(procedure.id) for v in inference.variants)
            return replace(base, status=Status.AMBIGUOUS if listed else Status.NOT_LISTED)
        present = self.patient_contraindications(facts)
        contraindications = self._contraindications(procedure, present)
        contraindicated = bool(contraindications)
        key = (procedure.id, rating, inference.candidates, region, present, contraindicated)
        alternatives = self._options.get(key)
        if alternatives is None:
            alternatives = self._alternatives(procedure, rating, inference, region, present, contraindicated)
            self._options[key] = alternatives
        return replace(
            base,
            status=Status.RATED,
            rating=rating,
            radiation=self._radiation(procedure, region),
            alternatives=alternatives,
            contraindications=contraindications,
        )

    def patient_contraindications(self, facts: PatientFacts) -> frozenset[str]:
        """The contraindication rules whose fact the patient has (names from the decision rules)."""
        return frozenset(
            name for name, rule in self._k.rules.contraindications.items() if facts.finding(rule.fact).value
        )

    def _contraindications(self, procedure: Procedure, present: frozenset[str]) -> tuple[str, ...]:
        """Why this patient should not have this procedure, in the rules' order."""
        rules = self._k.rules.contraindications
        return tuple(name for name in rules if name in present and procedure.id in rules[name].procedures)

    def rating_for(self, procedure_id: str, inference: Inference) -> Rating | None:
        """The agreed rating across candidates; None if any candidate is "no variant" or they differ."""
        key = (procedure_id, inference.candidates)
        if key not in self._ratings:
            self._ratings[key] = self._rating_for(procedure_id, inference)
        return self._ratings[key]

    def _rating_for(self, procedure_id: str, inference: Inference) -> Rating | None:
        if None in inference.candidates:
            return None
        rows = [self._k.variants[v].rating_of(procedure_id) for v in inference.variants]
        if any(row is None for row in rows):
            return None
        return self._agreed([row for row in rows if row is not None])

    def _agreed(self, rows: list[RatingRow]) -> Rating | None:
        categories = {row.category for row in rows}
        if len(categories) != 1:
            return None
        medians = {row.median for row in rows}
        category = rows[0].category
        return Rating(category, medians.pop() if len(medians) == 1 else None, self._k.acr.categories[category].rank)

    def _alternatives(
        self,
        ordered: Procedure,
        rating: Rating,
        inference: Inference,
        region: Region,
        present: frozenset[str],
        ordered_contraindicated: bool,
    ) -> tuple[Option, ...]:
        """Better options; when the order itself is contraindicated, the best options that are not."""
        options: list[Option] = []
        for procedure in self._k.acr.procedures:
            if procedure.phase != ordered.phase or procedure.id == ordered.id:
                continue
            if self._contraindications(procedure, present):
                continue
            other = self.rating_for(procedure.id, inference)
            if other is None or not (ordered_contraindicated or _better(other, rating)):
                continue
            item = self.orderable(procedure, region)
            if item is not None:
                options.append(Option(procedure, other, self._radiation(procedure, region), item))
        if ordered_contraindicated and options:
            best = max(o.rating.rank for o in options)
            options = [o for o in options if o.rating.rank == best]
        first = inference.variants[0]
        options.sort(key=lambda option: self._option_key(option, first))
        return tuple(options)

    def _option_key(self, option: Option, variant: int) -> tuple[int, int, int, int]:
        levels = self._k.acr.radiation_levels
        radiation = levels[option.radiation].rank if option.radiation in levels else 9
        position = self._k.table_position(variant, option.procedure.id)
        return (-option.rating.rank, -(option.rating.median or 0), radiation, position)

    def orderable(self, procedure: Procedure, region: Region) -> CatalogItem | None:
        """The catalog item that orders ``procedure`` for ``region``: the exact region if listed, else the
        smallest listed region covering it; treatments and whole-body studies by their suggestion item."""
        if procedure.phase == "treatment":
            item_id = self._k.catalog.suggestion_codes.get(procedure.id)
            return self._k.catalog_items[item_id] if item_id else None
        candidates = [i for i in self._k.catalog.items if i.procedure == procedure.id and i.suggestable]
        if not procedure.regional:
            return candidates[0] if candidates else None
        if not region:
            return None
        covering = [i for i in candidates if i.region and region <= frozenset(i.region)]
        return min(covering, key=lambda i: len(i.region or ()), default=None)

    def _radiation(self, procedure: Procedure, region: Region) -> str | None:
        if procedure.rrl_complete_spine and len(region) == 3:
            return procedure.rrl_complete_spine
        return procedure.rrl


def _better(candidate: Rating, ordered: Rating) -> bool:
    if candidate.rank != ordered.rank:
        return candidate.rank > ordered.rank
    return candidate.median is not None and ordered.median is not None and candidate.median > ordered.median
