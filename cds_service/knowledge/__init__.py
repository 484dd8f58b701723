"""The ACR VCF knowledge base: versioned data files, validated once and held for the process.

``data/acr_vcf_2022.json`` holds the 9 variants with every procedure's category, median where known
and relative radiation level; ``data/order_catalog.json`` maps orderable procedures to their codes;
``data/value_sets.json`` holds the code sets and text patterns the fact extraction reads;
``data/override_reasons.json`` the reasons a clinician may give for overriding a card;
``data/decision_rules.json`` the variant rules, contraindications, red flag and consult policy. Each
file records its sources.
"""

from __future__ import annotations

import json
from functools import cached_property, lru_cache
from importlib import resources

from .models import (
    AcrTopic,
    CatalogItem,
    DecisionRules,
    OrderCatalog,
    OverrideReasons,
    Procedure,
    ValueSets,
    Variant,
)

__all__ = ["Knowledge", "load_knowledge"]


class Knowledge:
    """The three data files, validated, with lookups the engine needs."""

    def __init__(
        self,
        acr: AcrTopic,
        catalog: OrderCatalog,
        value_sets: ValueSets,
        override_reasons: OverrideReasons,
        rules: DecisionRules,
    ) -> None:
        self.acr = acr
        self.catalog = catalog
        self.value_sets = value_sets
        self.override_reasons = override_reasons
        self.rules = rules
        self._check_rules()
        for item in catalog.items:
            if item.procedure not in self.procedures:
                raise ValueError(f"catalog item {item.id} names unknown procedure {item.procedure!r}")
        for procedure in catalog.suggestion_codes:
            if procedure not in self.procedures:
                raise ValueError(f"suggestion code for unknown procedure {procedure!r}")

    def _check_rules(self) -> None:
        for phase in ("imaging", "treatment"):
            for rule in self.rules.variant_rules.for_phase(phase):
                if rule.variant is not None and self.variants[rule.variant].phase != phase:
                    raise ValueError(
                        f"{phase} rule names variant {rule.variant}, a {self.variants[rule.variant].phase} one"
                    )
        named = [p for c in self.rules.contraindications.values() for p in c.procedures]
        flag = self.rules.red_flag
        named += [flag.imaging, flag.consult, *flag.imaging_when_contraindicated.values()]
        for procedure in named:
            if procedure not in self.procedures:
                raise ValueError(f"decision rules name unknown procedure {procedure!r}")
        for name in flag.imaging_when_contraindicated:
            if name not in self.rules.contraindications:
                raise ValueError(f"red flag names unknown contraindication {name!r}")
        for number in self.rules.consult_card_variants:
            if number not in self.variants:
                raise ValueError(f"consult card variant {number} does not exist")

    @cached_property
    def procedures(self) -> dict[str, Procedure]:
        return {p.id: p for p in self.acr.procedures}

    @cached_property
    def variants(self) -> dict[int, Variant]:
        return {v.number: v for v in self.acr.variants}

    @cached_property
    def catalog_items(self) -> dict[str, CatalogItem]:
        return {item.id: item for item in self.catalog.items}

    def table_position(self, variant: int, procedure_id: str) -> int:
        """Row of a procedure in a variant's ACR table: the last tie-breaker when ranking options."""
        for position, row in enumerate(self.variants[variant].ratings):
            if row.procedure == procedure_id:
                return position
        return len(self.variants[variant].ratings)


def _read(name: str) -> object:
    return json.loads(resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_knowledge() -> Knowledge:
    """Load and validate the knowledge files (once per process)."""
    return Knowledge(
        acr=AcrTopic.model_validate(_read("acr_vcf_2022.json")),
        catalog=OrderCatalog.model_validate(_read("order_catalog.json")),
        value_sets=ValueSets.model_validate(_read("value_sets.json")),
        override_reasons=OverrideReasons.model_validate(_read("override_reasons.json")),
        rules=DecisionRules.model_validate(_read("decision_rules.json")),
    )
