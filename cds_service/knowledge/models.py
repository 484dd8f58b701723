"""Typed, validated forms of the knowledge data files (``data/*.json``).

The files are the clinical knowledge; these models only check them (referential integrity, value
ranges, uniqueness) and give them types. Nothing clinical is decided here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

CategoryCode = Literal["usually-appropriate", "may-be-appropriate", "usually-not-appropriate"]
Phase = Literal["imaging", "treatment"]
RegionName = Literal["cervical", "thoracic", "lumbar"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryInfo(_Data):
    display: str
    rank: int = Field(ge=1, le=3)
    pama: Literal["appropriate", "not-appropriate"]


class RadiationLevel(_Data):
    rank: int
    adult_dose: str


class Procedure(_Data):
    id: str
    name: str
    phase: Phase
    modality: str | None
    contrast: str | None
    regional: bool
    rrl: str | None
    rrl_complete_spine: str | None = None
    rrl_source: str


class RatingRow(_Data):
    procedure: str
    category: CategoryCode
    median: int | None = Field(default=None, ge=1, le=9)
    note: str | None = None


class Variant(_Data):
    number: int = Field(ge=1, le=9)
    phase: Phase
    title: str
    title_is_verbatim: bool
    gravitas_scenarios: list[str]
    ratings: list[RatingRow]

    def rating_of(self, procedure_id: str) -> RatingRow | None:
        """The row for a procedure, or None when the variant does not list it."""
        for row in self.ratings:
            if row.procedure == procedure_id:
                return row
        return None


class Topic(_Data):
    id: str
    title: str
    version: str
    citation: str
    url: str
    ratings_url: str


class AcrTopic(_Data):
    schema_: str = Field(alias="schema")
    topic: Topic
    sources: list[str]
    categories: dict[CategoryCode, CategoryInfo]
    radiation_levels: dict[str, RadiationLevel]
    procedures: list[Procedure]
    variants: list[Variant]

    @model_validator(mode="after")
    def _consistent(self) -> AcrTopic:
        procedures = {p.id: p for p in self.procedures}
        if len(procedures) != len(self.procedures):
            raise ValueError("duplicate procedure ids")
        if sorted(v.number for v in self.variants) != list(range(1, 10)):
            raise ValueError("variants must be numbered 1 to 9, once each")
        for p in self.procedures:
            for level in (p.rrl, p.rrl_complete_spine):
                if level is not None and level not in self.radiation_levels:
                    raise ValueError(f"procedure {p.id}: unknown radiation level {level!r}")
        for v in self.variants:
            seen: set[str] = set()
            for row in v.ratings:
                proc = procedures.get(row.procedure)
                if proc is None:
                    raise ValueError(f"variant {v.number}: unknown procedure {row.procedure!r}")
                if proc.phase != v.phase:
                    raise ValueError(f"variant {v.number}: {proc.id} is a {proc.phase} procedure")
                if row.procedure in seen:
                    raise ValueError(f"variant {v.number}: {row.procedure} listed twice")
                seen.add(row.procedure)
        return self


class CatalogCode(_Data):
    system: str
    code: str


class CatalogItem(_Data):
    id: str
    procedure: str
    region: list[RegionName] | None
    display: str
    codes: list[CatalogCode] = Field(min_length=1)
    suggestable: bool
    note: str | None = None


class OrderCatalog(_Data):
    schema_: str = Field(alias="schema")
    version: str
    systems: dict[str, str | list[str]]
    sources: list[str]
    suggestion_codes: dict[str, str]
    items: list[CatalogItem]

    @model_validator(mode="after")
    def _unique(self) -> OrderCatalog:
        ids = {item.id for item in self.items}
        if len(ids) != len(self.items):
            raise ValueError("duplicate catalog item ids")
        codes: set[tuple[str, str]] = set()
        for item in self.items:
            for c in item.codes:
                key = (c.system, c.code)
                if key in codes:
                    raise ValueError(f"code {c.system}|{c.code} is mapped twice")
                codes.add(key)
        for procedure, item_id in self.suggestion_codes.items():
            if item_id not in ids:
                raise ValueError(f"suggestion for {procedure} names unknown item {item_id}")
        return self


class ValueSet(_Data):
    description: str
    icd10cm_prefixes: list[str] = Field(default_factory=list)
    icd10cm_ranges: list[tuple[str, str]] = Field(default_factory=list)
    snomed: list[str] = Field(default_factory=list)
    cpt: list[str] = Field(default_factory=list)
    icd10pcs: list[str] = Field(default_factory=list)
    loinc: list[str] = Field(default_factory=list)
    sources: list[str] = Field(min_length=1)


class TextRules(_Data):
    # Per finding, lower-case words one of which every match of its patterns contains: a cheap test
    # of which findings' regexes a text needs at all.
    triggers: dict[str, list[Annotated[str, StringConstraints(min_length=1, pattern=r"^[^A-Z]+$")]]]
    negation_before: list[str]
    negation_after: list[str]
    patterns: dict[str, list[str]]
    region: dict[RegionName, list[str]]

    @model_validator(mode="after")
    def _every_finding_has_triggers(self) -> TextRules:
        if set(self.triggers) != set(self.patterns):
            raise ValueError(
                f"triggers and patterns name different findings: {set(self.triggers) ^ set(self.patterns)}"
            )
        if not all(self.triggers.values()):
            raise ValueError("every finding needs at least one trigger word")
        return self


class Regions(_Data):
    # ICD-10-CM codes the region by the character after this category (M48.5, collapsed vertebra).
    icd10cm_category: str
    icd10cm_by_character: dict[str, list[RegionName]]
    snomed: dict[str, list[RegionName]]


class Thresholds(_Data):
    egfr_gadolinium_risk_below: float = Field(gt=0)
    egfr_source: str


class ValueSets(_Data):
    schema_: str = Field(alias="schema")
    version: str
    systems: dict[str, list[str]]
    value_sets: dict[str, ValueSet]
    regions: Regions
    text: TextRules
    thresholds: Thresholds


class OverrideReasonCode(_Data):
    code: str
    display: str = Field(min_length=1)


class OverrideReasons(_Data):
    schema_: str = Field(alias="schema")
    version: str
    description: str
    reasons: list[OverrideReasonCode]
    by_card_kind: dict[str, list[str]]

    @model_validator(mode="after")
    def _known(self) -> OverrideReasons:
        codes = {r.code for r in self.reasons}
        for kind, listed in self.by_card_kind.items():
            unknown = set(listed) - codes
            if unknown:
                raise ValueError(f"card kind {kind}: unknown override reasons {sorted(unknown)}")
        return self


FactName = Literal[
    "vcf_current",
    "vcf_history",
    "traumatic_fracture",
    "new_fracture",
    "symptomatic",
    "malignancy",
    "pathological",
    "multiple_fractures",
    "prior_treatment",
    "marrow_edema_or_cleft",
    "worsening_pain",
    "deformity",
    "pulmonary_dysfunction",
    "neurologic_deficit",
    "mri_contraindication",
    "gadolinium_risk",
]


class VariantRule(_Data):
    """Matches when every ``all`` fact is true, one ``any`` fact is (if given), and no ``none`` fact is."""

    variant: int | None = Field(ge=1, le=9)
    all_of: list[FactName] = Field(default_factory=list, alias="all")
    any_of: list[FactName] = Field(default_factory=list, alias="any")
    none_of: list[FactName] = Field(default_factory=list, alias="none")
    why: str


class VariantRules(_Data):
    description: str
    imaging: list[VariantRule]
    treatment: list[VariantRule]

    def for_phase(self, phase: Phase) -> list[VariantRule]:
        return self.imaging if phase == "imaging" else self.treatment


class Contraindication(_Data):
    fact: FactName
    procedures: list[str] = Field(min_length=1)
    reason: str
    explained: str


class RedFlag(_Data):
    fact: FactName
    imaging: str
    imaging_when_contraindicated: dict[str, str]
    consult: str


class DecisionRules(_Data):
    schema_: str = Field(alias="schema")
    version: str
    sources: list[str] = Field(min_length=1)
    variant_rules: VariantRules
    contraindications: dict[str, Contraindication]
    red_flag: RedFlag
    consult_card_variants: list[int]
