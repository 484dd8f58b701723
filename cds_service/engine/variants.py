"""Which ACR variant applies (product-spec §3.3).

The rules are written once, as functions of known booleans. Facts the record leaves open
(``None``) are enumerated both ways, so the candidate set and the facts that would decide between
candidates fall out of the same rules instead of being special-cased.

Imaging (variants 1-4): malignancy outranks the other facts (a new VCF in a cancer patient is
malignant until proven otherwise). Treatment (5-9): the more specific wins, 9 (pathological) over
7 (prior augmentation or surgery) over 6 (marrow edema or cleft) over 8 (worsening pain, deformity,
pulmonary dysfunction) over 5 (asymptomatic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..knowledge.models import Phase
from .facts import PatientFacts

# The facts a record may leave open, in the order a card names them.
OPEN_FACTS: tuple[str, ...] = (
    "symptomatic",
    "pathological",
    "marrow_edema_or_cleft",
    "worsening_pain",
    "new_fracture",
)
FACT_QUESTIONS: dict[str, str] = {
    "symptomatic": "whether the fracture is symptomatic (back or neck pain)",
    "pathological": "whether the fracture is pathological or osteoporotic",
    "marrow_edema_or_cleft": "whether MRI shows bone marrow edema or an intravertebral cleft",
    "worsening_pain": "whether the pain is worsening",
    "new_fracture": "whether the fracture is new (onset or diagnosis date)",
}

Situation = Mapping[str, bool]


def imaging_variant(s: Situation) -> int | None:
    """Variant 1-4 for an imaging order, or None when no imaging variant fits."""
    if s["vcf_current"]:
        if s["malignancy"]:
            return 2 if s["symptomatic"] else 4
        if s["symptomatic"] and (s["multiple_fractures"] or s["prior_treatment"]):
            return 3
        if s["symptomatic"] and s["new_fracture"]:
            return 1
        return None
    prior_fractures = s["multiple_fractures"] or s["prior_treatment"]
    if s["vcf_history"] and not s["malignancy"] and s["symptomatic"] and prior_fractures:
        # New pain in a patient with prior fractures but none current (variant 3's setting).
        return 3
    return None


def treatment_variant(s: Situation) -> int | None:
    """Variant 5-9 for a treatment or consult order, or None when no treatment variant fits."""
    if not s["vcf_current"]:
        return None
    if s["pathological"]:
        return 9 if s["symptomatic"] else None
    if s["symptomatic"] and s["prior_treatment"]:
        return 7
    if s["symptomatic"] and s["marrow_edema_or_cleft"]:
        return 6
    if (s["symptomatic"] and s["worsening_pain"]) or s["deformity"] or s["pulmonary_dysfunction"]:
        return 8
    if not s["symptomatic"]:
        return 5
    return None


RULES: dict[Phase, Callable[[Situation], int | None]] = {"imaging": imaging_variant, "treatment": treatment_variant}
_KNOWN_FACTS = (
    "vcf_current",
    "vcf_history",
    "malignancy",
    "multiple_fractures",
    "prior_treatment",
    "deformity",
    "pulmonary_dysfunction",
)


@dataclass(frozen=True)
class Inference:
    """The variants the facts leave open (None meaning "no variant fits"), and what would decide."""

    candidates: frozenset[int | None]
    deciding_facts: tuple[str, ...]

    @property
    def variants(self) -> tuple[int, ...]:
        return tuple(sorted(v for v in self.candidates if v is not None))

    @property
    def single(self) -> int | None:
        """The variant when exactly one fits and nothing is open."""
        return self.variants[0] if self.candidates == frozenset(self.variants) and len(self.variants) == 1 else None


def infer_variant(facts: PatientFacts, phase: Phase) -> Inference:
    """The candidate variants for an order of ``phase`` given ``facts``."""
    rule = RULES[phase]
    base: dict[str, bool] = {name: bool(facts.finding(name).value) for name in _KNOWN_FACTS}
    open_facts = [name for name in OPEN_FACTS if facts.finding(name).value is None]
    for name in OPEN_FACTS:
        if name not in open_facts:
            base[name] = bool(facts.finding(name).value)
    outcomes: dict[tuple[bool, ...], int | None] = {}
    for values in itertools.product((False, True), repeat=len(open_facts)):
        outcomes[values] = rule({**base, **dict(zip(open_facts, values, strict=True))})
    deciding = tuple(
        name
        for position, name in enumerate(open_facts)
        if any(
            outcomes[values] != outcomes[(*values[:position], not values[position], *values[position + 1 :])]
            for values in outcomes
        )
    )
    return Inference(candidates=frozenset(outcomes.values()), deciding_facts=deciding)
