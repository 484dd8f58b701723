"""Patient facts (product-spec §3.2), each with the resources that prove it.

A fact is a ``Finding``: ``True`` (present), ``False`` (absent, or explicitly denied) or ``None``
(the record does not say). Facts that a record normally states when true (malignancy, prior
treatment, implants, deformity) are ``False`` when nothing shows them; facts usually written only
in prose or left unrecorded (symptoms, MRI findings, worsening pain, how new a fracture is, the
etiology of an unspecified fracture in a cancer patient) stay ``None`` so the variant inference
can name them as the missing fact instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal, NamedTuple

from .fhir import Code, codings, concept_text, first_text, items, notes, parse_date, reference_of, status_code
from .terminology import Region, Terminology
from .text import Mention, TextFinder

IGNORED_VERIFICATION = {"entered-in-error", "refuted"}
INACTIVE_CLINICAL = {"inactive", "remission", "resolved"}
IGNORED_EVENT_STATUS = {"entered-in-error", "not-done", "cancelled", "preparation"}

VcfKind = Literal["pathological", "osteoporotic", "unspecified"]


@dataclass(frozen=True)
class Evidence:
    """A resource (or a part of one) that supports a fact."""

    reference: str
    summary: str
    when: date | None = None


@dataclass(frozen=True)
class Finding:
    value: bool | None
    evidence: tuple[Evidence, ...] = ()

    @staticmethod
    def of(present: list[Evidence], absent: list[Evidence] | None = None, *, unknown: bool = False) -> Finding:
        """True with ``present`` evidence, else False with ``absent`` evidence, else None or False."""
        if present:
            return Finding(True, tuple(present))
        if absent:
            return Finding(False, tuple(absent))
        return Finding(None) if unknown else Finding(False)


@dataclass(frozen=True)
class PatientFacts:
    vcf_current: Finding
    vcf_history: Finding
    vcf_kind: VcfKind | None
    traumatic_fracture: Finding
    new_fracture: Finding
    fracture_region: Region
    symptomatic: Finding
    malignancy: Finding
    pathological: Finding
    multiple_fractures: Finding
    prior_treatment: Finding
    marrow_edema_or_cleft: Finding
    worsening_pain: Finding
    deformity: Finding
    pulmonary_dysfunction: Finding
    neurologic_deficit: Finding
    mri_contraindication: Finding
    gadolinium_risk: Finding

    def finding(self, name: str) -> Finding:
        value = getattr(self, name)
        assert isinstance(value, Finding)
        return value


class _Read(NamedTuple):
    """What a resource's concept and texts say: the first thing read, and often the last."""

    codes: list[Code]
    value_sets: frozenset[str]
    texts: list[str]
    scan: dict[str, Mention]


@dataclass
class _Item:
    """One piece of the record reduced to what fact rules read."""

    reference: str
    concept: Any  # the CodeableConcept its evidence summary is read from, only when it is evidence
    codes: list[Code]
    value_sets: frozenset[str]
    texts: list[str]
    scan: dict[str, Mention]  # the findings its texts mention
    active: bool
    when: date | None
    kind: str  # "condition", "procedure", "observation", "allergy", "reason"
    regions: Region = frozenset()
    position: int = 0
    raw: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> Evidence:
        fallback = self.reference.split("/")[0] if self.kind != "reason" else "order reason"
        return Evidence(self.reference, first_text(self.concept) or fallback, self.when)


class FactExtractor:
    """Turns a patient record and the draft orders into ``PatientFacts``."""

    def __init__(self, terminology: Terminology, text: TextFinder, *, egfr_below: float) -> None:
        self._term = terminology
        self._text = text
        self._egfr_below = egfr_below
        self._readers: dict[str, Callable[[dict[str, Any]], list[_Item]]] = {
            "Condition": self._condition,
            "Procedure": self._procedure,
            "Observation": self._observation,
            "AllergyIntolerance": self._allergy,
        }

    def extract(
        self, record: Iterable[dict[str, Any]], orders: Iterable[dict[str, Any]], *, today: date, new_window: timedelta
    ) -> PatientFacts:
        items = [item for resource in record for item in self._items_of(resource)]
        for order in orders:
            items.extend(self._reasons_of(order, today))
        for position, item in enumerate(items):
            item.position = position
        return self._facts(items, today=today, new_window=new_window)

    # ---------------------------------------------------------------------------------- reading

    def _items_of(self, resource: dict[str, Any]) -> list[_Item]:
        kind = resource.get("resourceType")
        reader = self._readers.get(kind) if isinstance(kind, str) else None
        return reader(resource) if reader else []

    def _read(self, concept: Any, texts: list[str]) -> _Read | None:
        """The concept's value sets, and the findings its text and ``texts`` mention; None when there
        are neither: no rule reads such a resource, and most of a chart (labs, vitals, unrelated
        problems, routine notes) is such clutter, so nothing more is read from it."""
        codes = codings(concept)
        value_sets = self._value_sets(codes)
        texts = concept_text(concept) + texts
        scan = self._text.scan_all(texts)
        return _Read(codes, value_sets, texts, scan) if value_sets or scan else None

    def _value_sets(self, codes: list[Code]) -> frozenset[str]:
        if len(codes) == 1:  # the usual case: no union to build
            return self._term.value_sets_of(codes[0])
        return frozenset().union(*(self._term.value_sets_of(c) for c in codes))

    def _item(
        self,
        resource: dict[str, Any],
        concept: Any,
        read: _Read,
        kind: str,
        *,
        active: bool,
        when: date | None,
        region_codes: list[Code] | None = None,
        reference: str | None = None,
    ) -> _Item:
        """The reduced form every reader shares. Spine regions are read only when ``region_codes`` is
        given (fractures and order reasons)."""
        regions: Region = frozenset()
        if region_codes is not None:
            regions = frozenset().union(*(self._term.region_of(c) for c in read.codes + region_codes))
        return _Item(
            reference=reference or reference_of(resource),
            concept=concept,
            codes=read.codes,
            value_sets=read.value_sets,
            texts=read.texts,
            scan=read.scan,
            active=active,
            when=when,
            kind=kind,
            regions=regions,
            raw=resource,
        )

    def _condition(self, r: dict[str, Any]) -> list[_Item]:
        if status_code(r.get("verificationStatus")) in IGNORED_VERIFICATION:
            return []
        sites: list[Any] = r["bodySite"] if isinstance(r.get("bodySite"), list) else []
        site_texts = [t for site in sites for t in concept_text(site)] if sites else []
        concept = r.get("code")
        read = self._read(concept, notes(r) + site_texts)
        if read is None:
            return []
        onset = r.get("onsetPeriod", {}).get("start") if isinstance(r.get("onsetPeriod"), dict) else None
        item = self._item(
            r,
            concept,
            read,
            "condition",
            active=status_code(r.get("clinicalStatus")) not in INACTIVE_CLINICAL,
            when=parse_date(r.get("onsetDateTime")) or parse_date(onset) or parse_date(r.get("recordedDate")),
            region_codes=[c for site in sites for c in codings(site)],
        )
        if site_texts:
            item.regions |= self._text.regions(site_texts)
        return [item]

    def _procedure(self, r: dict[str, Any]) -> list[_Item]:
        status = r.get("status")
        if status in IGNORED_EVENT_STATUS:
            return []
        concept = r.get("code")
        read = self._read(concept, notes(r))
        if read is None:
            return []
        period = r.get("performedPeriod")
        start = period.get("start") if isinstance(period, dict) else None
        when = parse_date(r.get("performedDateTime")) or parse_date(start)
        active = status in (None, "completed", "in-progress")
        return [self._item(r, concept, read, "procedure", active=active, when=when)]

    def _observation(self, r: dict[str, Any]) -> list[_Item]:
        if r.get("status") in ("entered-in-error", "cancelled"):
            return []
        texts = notes(r)
        if "valueCodeableConcept" in r:
            texts += concept_text(r["valueCodeableConcept"])
        if isinstance(r.get("valueString"), str):
            texts.append(r["valueString"])
        concept = r.get("code")
        read = self._read(concept, texts)
        if read is None:
            return []
        when = parse_date(r.get("effectiveDateTime")) or parse_date(r.get("issued"))
        return [self._item(r, concept, read, "observation", active=True, when=when)]

    def _allergy(self, r: dict[str, Any]) -> list[_Item]:
        if status_code(r.get("verificationStatus")) in IGNORED_VERIFICATION:
            return []
        if status_code(r.get("clinicalStatus")) in ("inactive", "resolved"):
            return []
        substances = [
            t
            for reaction in items(r.get("reaction"))
            if isinstance(reaction, dict)
            for t in concept_text(reaction.get("substance"))
        ]
        concept = r.get("code")
        read = self._read(concept, substances)
        if read is None:
            return []
        return [self._item(r, concept, read, "allergy", active=True, when=parse_date(r.get("recordedDate")))]

    def _reasons_of(self, order: dict[str, Any], today: date) -> list[_Item]:
        # A reason on a draft order is the clinician's statement about the patient now.
        reference = f"{reference_of(order)}#reasonCode"
        found = []
        for reason in items(order.get("reasonCode")):
            read = self._read(reason, [])
            if read is not None:
                item = self._item(
                    order, reason, read, "reason", active=True, when=today, region_codes=[], reference=reference
                )
                found.append(item)
        return found

    # ---------------------------------------------------------------------------------- rules

    def _facts(self, items: list[_Item], *, today: date, new_window: timedelta) -> PatientFacts:
        idx = _Index(items)
        clinical = ("condition", "reason")
        vcf_sets = ("vcf-unspecified", "vcf-osteoporotic", "vcf-pathological", "vcf-pathological-neoplastic")
        vcf_items = [i for i in idx.coded(*vcf_sets, kinds=clinical) if "vcf-traumatic" not in i.value_sets]
        current = [i for i in vcf_items if i.active]
        history = [i for i in vcf_items if not i.active]
        traumatic = idx.coded("vcf-traumatic", kinds=clinical)

        malignancy = Finding.of(_ev(idx.coded("malignancy", "vcf-pathological-neoplastic", kinds=clinical)))

        pathological_items = [i for i in current if i.value_sets & {"vcf-pathological", "vcf-pathological-neoplastic"}]
        osteoporotic_items = [i for i in current if "vcf-osteoporotic" in i.value_sets]
        kind: VcfKind | None = None
        if pathological_items:
            kind, pathological = "pathological", Finding.of(_ev(pathological_items))
        elif osteoporotic_items:
            kind, pathological = "osteoporotic", Finding(False, tuple(_ev(osteoporotic_items)))
        elif current:
            kind = "unspecified"
            # An unspecified fracture in a cancer patient may be pathological: leave it open.
            osteoporosis = idx.coded("osteoporosis", active_only=True, kinds=clinical)
            pathological = Finding(None) if malignancy.value else Finding(False, tuple(_ev(osteoporosis)))
        else:
            pathological = Finding(False)

        region_source = current or history
        region: Region = frozenset().union(*(i.regions for i in region_source))
        if not region:
            region = self._text.regions(t for i in region_source for t in i.texts)

        narrative = (*clinical, "observation")  # where symptoms and findings are written
        pain_text, pain_denied = idx.mentions("pain", kinds=narrative, active_only=True)
        worse_text, worse_denied = idx.mentions("worsening-pain", kinds=narrative, active_only=True)
        asymptomatic_text, _ = idx.mentions("asymptomatic", kinds=narrative, active_only=True)
        pain = idx.coded("back-pain", active_only=True, kinds=clinical) + pain_text + worse_text
        symptomatic = Finding.of(_ev(pain), _ev(asymptomatic_text + pain_denied), unknown=True)
        if symptomatic.value is False:
            worsening = Finding(False, symptomatic.evidence)
        else:
            worsening = Finding.of(_ev(worse_text), _ev(worse_denied), unknown=True)

        multiple_text, _ = idx.mentions("multiple-fractures", kinds=narrative, active_only=True)
        sites = {key for i in vcf_items if i.kind == "condition" for key in [_fracture_site(i)] if key}
        multiple = Finding.of(
            _ev([i for i in vcf_items if i.kind == "condition"]) if len(sites) >= 2 else _ev(multiple_text)
        )

        prior = idx.coded("prior-vertebral-augmentation", "prior-spine-surgery", kinds=("procedure", "condition"))
        prior = [i for i in prior if i.kind == "condition" or i.active]

        reports = ("condition", "observation", "procedure", "reason")  # MRI findings, whatever their status
        edema_text, edema_denied = idx.mentions("marrow-edema", kinds=reports)
        cleft_text, cleft_denied = idx.mentions("intravertebral-cleft", kinds=reports)
        edema = Finding.of(_ev(edema_text + cleft_text), _ev(edema_denied + cleft_denied), unknown=True)

        deformity_text, _ = idx.mentions("deformity", kinds=narrative, active_only=True)
        pulmonary_text, _ = idx.mentions("pulmonary-dysfunction", kinds=narrative, active_only=True)
        neuro_text, _ = idx.mentions("neurologic-deficit", kinds=narrative, active_only=True)
        device_text, _ = idx.mentions("mri-contraindication", kinds=("condition", "procedure"), active_only=True)

        return PatientFacts(
            vcf_current=Finding.of(_ev(current)),
            vcf_history=Finding.of(_ev(history)),
            vcf_kind=kind,
            traumatic_fracture=Finding.of(_ev(traumatic)),
            new_fracture=_newness(current, today, new_window),
            fracture_region=region,
            symptomatic=symptomatic,
            malignancy=malignancy,
            pathological=pathological,
            multiple_fractures=multiple,
            prior_treatment=Finding.of(_ev(prior)),
            marrow_edema_or_cleft=edema,
            worsening_pain=worsening,
            deformity=Finding.of(_ev(idx.coded("spinal-deformity", active_only=True) + deformity_text)),
            pulmonary_dysfunction=Finding.of(_ev(pulmonary_text)),
            neurologic_deficit=Finding.of(
                _ev(idx.coded("neurologic-deficit", active_only=True, kinds=clinical) + neuro_text)
            ),
            mri_contraindication=Finding.of(_ev(idx.coded("mri-contraindication", active_only=True) + device_text)),
            gadolinium_risk=_gadolinium_risk(idx, items, self._egfr_below),
        )


class _Index:
    """Queries over the reduced record: by value set, and by text finding (each text read once)."""

    def __init__(self, items: list[_Item]) -> None:
        self._by_set: dict[str, list[_Item]] = {}
        for item in items:
            for name in item.value_sets:
                self._by_set.setdefault(name, []).append(item)
        # Texts were read once, with the item; only items that mention some finding are kept.
        self._mentioning = [(item, item.scan) for item in items if item.scan]

    def coded(self, *names: str, active_only: bool = False, kinds: tuple[str, ...] | None = None) -> list[_Item]:
        found: dict[int, _Item] = {}  # by identity, in record order, each item once
        for name in names:
            for item in self._by_set.get(name, ()):
                if (item.active or not active_only) and (kinds is None or item.kind in kinds):
                    found.setdefault(id(item), item)
        return sorted(found.values(), key=lambda item: item.position)

    def mentions(
        self, name: str, *, kinds: tuple[str, ...], active_only: bool = False
    ) -> tuple[list[_Item], list[_Item]]:
        """Items of ``kinds`` whose text affirms the finding, and those whose text only denies it."""
        present, negated = [], []
        for item, scan in self._mentioning:
            if item.kind not in kinds or (active_only and not item.active):
                continue
            mention = scan.get(name)
            if mention is Mention.PRESENT:
                present.append(item)
            elif mention is Mention.NEGATED:
                negated.append(item)
        return present, negated


def _newness(current: list[_Item], today: date, window: timedelta) -> Finding:
    dated = [(i, i.when) for i in current if i.when is not None]
    recent = [i for i, when in dated if today - when <= window]
    if recent:
        return Finding.of(_ev(recent))
    if dated and len(dated) == len(current):
        return Finding(False, tuple(_ev([i for i, _ in dated])))
    return Finding(None)


def _gadolinium_risk(idx: _Index, items: list[_Item], egfr_below: float) -> Finding:
    evidence: list[Evidence] = []
    egfr = [i for i in items if i.kind == "observation" and "egfr" in i.value_sets]
    latest = max(egfr, key=lambda i: i.when or date.min, default=None)
    if latest is not None:
        quantity = latest.raw.get("valueQuantity")
        value = quantity.get("value") if isinstance(quantity, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value < egfr_below:
            evidence.append(Evidence(latest.reference, f"eGFR {value:g} (below {egfr_below:g})", latest.when))
    dialysis_text, _ = idx.mentions("dialysis", kinds=("condition", "procedure"), active_only=True)
    allergy_text, _ = idx.mentions("gadolinium-allergy", kinds=("allergy",))
    coded = idx.coded("dialysis", "contrast-allergy", active_only=True)
    evidence += _ev(coded + dialysis_text + allergy_text)
    return Finding.of(evidence)


def _ev(items: list[_Item]) -> list[Evidence]:
    """Evidence of each distinct resource, in first-seen order."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.reference not in seen:
            seen.add(item.reference)
            out.append(item.evidence())
    return out


_LEVEL = re.compile(r"\b([CTL](?:1[0-2]|[1-9]))\b", re.IGNORECASE)


def _fracture_site(item: _Item) -> frozenset[str]:
    # The same fracture is often recorded per encounter or under two codes; only distinct vertebral
    # levels (from text) or distinct regions (from codes and body sites) count as distinct fractures.
    levels = frozenset(m.upper() for t in item.texts for m in _LEVEL.findall(t))
    return levels or item.regions
