"""Which ACR variant applies (product-spec §3.3).

The rules are data (``knowledge/data/decision_rules.json``): ordered, first match wins, each a
condition on known booleans. Facts the record leaves open (``None``) are enumerated both ways, so the
candidate set and the facts that would decide between candidates fall out of the same rules instead
of being special-cased.

Imaging (variants 1-4): malignancy outranks the other facts (a new VCF in a cancer patient is
malignant until proven otherwise). Treatment (5-9): the more specific wins, 9 (pathological) over
7 (prior augmentation or surgery) over 6 (marrow edema or cleft) over 8 (worsening pain, deformity,
pulmonary dysfunction) over 5 (asymptomatic).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from ..knowledge import load_knowledge
from ..knowledge.models import Phase, VariantRule, VariantRules
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


def rule_variant(rules: Sequence[VariantRule], s: Situation) -> int | None:
    """The variant of the first rule that matches the situation (None: no variant fits)."""
    for rule in rules:
        if (
            all(s[f] for f in rule.all_of)
            and (not rule.any_of or any(s[f] for f in rule.any_of))
            and not any(s[f] for f in rule.none_of)
        ):
            return rule.variant
    return None


def imaging_variant(s: Situation) -> int | None:
    """Variant 1-4 for an imaging order, or None when no imaging variant fits."""
    return rule_variant(load_knowledge().rules.variant_rules.imaging, s)


def treatment_variant(s: Situation) -> int | None:
    """Variant 5-9 for a treatment or consult order, or None when no treatment variant fits."""
    return rule_variant(load_knowledge().rules.variant_rules.treatment, s)


@dataclass(frozen=True)
class Inference:
    """The variants the facts leave open (None meaning "no variant fits"), and what would decide."""

    candidates: frozenset[int | None]
    deciding_facts: tuple[str, ...]

    @cached_property  # cards ask several times each
    def variants(self) -> tuple[int, ...]:
        return tuple(sorted(v for v in self.candidates if v is not None))

    @property
    def single(self) -> int | None:
        """The variant when exactly one fits and nothing is open."""
        return self.variants[0] if self.candidates == frozenset(self.variants) and len(self.variants) == 1 else None


def infer_variant(facts: PatientFacts, phase: Phase, rules: VariantRules | None = None) -> Inference:
    """The candidate variants for an order of ``phase`` given ``facts``."""
    phase_rules = (rules or load_knowledge().rules.variant_rules).for_phase(phase)
    names = sorted({f for rule in phase_rules for f in (*rule.all_of, *rule.any_of, *rule.none_of)})
    base: dict[str, bool] = {name: bool(facts.finding(name).value) for name in names}
    # Facts the record leaves open are tried both ways, in the order a card would name them.
    open_facts = [name for name in OPEN_FACTS if name in base and facts.finding(name).value is None]
    outcomes: dict[tuple[bool, ...], int | None] = {}
    for values in itertools.product((False, True), repeat=len(open_facts)):
        outcomes[values] = rule_variant(phase_rules, {**base, **dict(zip(open_facts, values, strict=True))})
    deciding = tuple(
        name
        for position, name in enumerate(open_facts)
        if any(
            outcomes[values] != outcomes[(*values[:position], not values[position], *values[position + 1 :])]
            for values in outcomes
        )
    )
    return Inference(candidates=frozenset(outcomes.values()), deciding_facts=deciding)
