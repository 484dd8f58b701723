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

from .fhir import Annotation, Code, CodeableConcept, Resource, concept_of, items, parse_date, reference_of
from .terminology import Region, Terminology
from .text import Mention, TextFinder

IGNORED_VERIFICATION = {"entered-in-error", "refuted"}
INACTIVE_CLINICAL = {"inactive", "remission", "resolved"}
IGNORED_EVENT_STATUS = {"entered-in-error", "not-done", "cancelled", "preparation"}
IGNORED_OBSERVATION_STATUS = {"entered-in-error", "cancelled"}
INACTIVE_ALLERGY = {"inactive", "resolved"}

VcfKind = Literal["pathological", "osteoporotic", "unspecified"]
_NO_SETS: frozenset[str] = frozenset()
_NO_REGIONS: Region = frozenset()
_NO_MENTIONS: dict[str, Mention] = {}  # shared, never changed


# Evidence and Finding are named tuples, not frozen dataclasses: a first call for a patient makes a few
# dozen of each, and a frozen dataclass sets each field through object.__setattr__.
class Evidence(NamedTuple):
    """A resource (or a part of one) that supports a fact."""

    reference: str
    summary: str
    when: date | None = None


class Finding(NamedTuple):
    """A fact's value, and the evidence for it."""

    value: bool | None
    evidence: tuple[Evidence, ...] = ()

    @staticmethod
    def of(present: list[Evidence], absent: list[Evidence] | None = None, *, unknown: bool = False) -> Finding:
        """True with ``present`` evidence, else False with ``absent`` evidence, else None or False."""
        # tuple.__new__ directly, as the NamedTuple's own __new__ (a Python function) does.
        if present:
            return _tuple_new(Finding, (True, tuple(present)))
        if absent:
            return _absent(absent)
        return _UNKNOWN if unknown else _ABSENT


_tuple_new = tuple.__new__
_UNKNOWN = Finding(None)  # shared: tuples never change
_ABSENT = Finding(False)


def _absent(evidence: Iterable[Evidence]) -> Finding:
    """False, with the evidence that shows it."""
    return _tuple_new(Finding, (False, tuple(evidence)))


# A named tuple, not a frozen dataclass: a first call for a patient builds one, and a frozen dataclass
# sets each of its 18 fields through object.__setattr__.
class PatientFacts(NamedTuple):
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


@dataclass(slots=True)
class _Item:
    """One piece of the record reduced to what fact rules read."""

    reference: str
    concept: CodeableConcept | None  # the concept its evidence summary is read from
    codes: list[Code]
    value_sets: frozenset[str]
    texts: list[str]
    scan: dict[str, Mention]  # the findings its texts mention
    active: bool
    when: date | None
    kind: str  # "condition", "procedure", "observation", "allergy", "reason"
    regions: Region = frozenset()
    position: int = 0
    quantity: float | None = None  # an Observation's valueQuantity.value
    _evidence: Evidence | None = field(default=None, init=False, repr=False, compare=False)

    def evidence(self) -> Evidence:
        """The item as evidence (made once: the rules cite the same few items for several facts)."""
        if self._evidence is None:
            fallback = self.reference.split("/")[0] if self.kind != "reason" else "order reason"
            label = self.concept.label() if self.concept is not None else None
            self._evidence = _tuple_new(Evidence, (self.reference, label or fallback, self.when))
        return self._evidence


class FactExtractor:
    """Turns a patient record and the draft orders into ``PatientFacts``."""

    def __init__(self, terminology: Terminology, text: TextFinder, *, egfr_below: float) -> None:
        self._term = terminology
        self._text = text
        self._egfr_below = egfr_below
        self._known = terminology.looked_up  # the same dicts, read first for every Coding and text
        self._seen = text.seen
        self._readers: dict[str | None, Callable[[Resource], _Item | None]] = {
            "Condition": self._condition,
            "Procedure": self._procedure,
            "Observation": self._observation,
            "AllergyIntolerance": self._allergy,
        }

    def extract(
        self, record: Iterable[Resource], orders: Iterable[dict[str, Any]], *, today: date, new_window: timedelta
    ) -> PatientFacts:
        """The facts ``record`` (read with ``read_document``) and the draft orders' reasons state."""
        readers = self._readers
        items = []
        for resource in record:
            reader = readers.get(resource.resourceType)
            item = reader(resource) if reader is not None else None
            if item is not None:
                items.append(item)
        for order in orders:
            items.extend(self._reasons_of(order, today))
        for position, item in enumerate(items):
            item.position = position
        return self._facts(items, today=today, new_window=new_window)

    # ---------------------------------------------------------------------------------- reading

    def _read(
        self, concept: CodeableConcept | None, notes: tuple[Annotation, ...], more: list[str] | None
    ) -> _Read | None:
        """The concept's value sets, and the findings its texts, ``notes`` and ``more`` texts mention;
        None when there are neither: no rule reads such a resource, and most of a chart (labs, vitals,
        unrelated problems, routine notes) is such clutter, so nothing more is read from it.

        The hot loop of a first call for a patient (every resource passes here, ~90% of them to be
        dropped): one call, one list of texts, Codings looked up as sent, and Codes built only for a
        resource that is kept.
        """
        value_sets = _NO_SETS
        texts = []
        if concept is not None:  # concept.texts(), gathered in the loop that looks the codes up
            if concept.text is not None:
                texts.append(concept.text)
            known = self._known
            for coding in concept.coding:
                if coding.display is not None:
                    texts.append(coding.display)
                if coding.system and coding.code:
                    found = known.get((coding.system, coding.code))
                    if found is None:
                        found = self._term.value_sets_for(coding.system, coding.code)
                    if found:
                        value_sets = value_sets | found if value_sets else found
        for note in notes:
            if note.text is not None:
                texts.append(note.text)
        if more:
            texts += more
        # Texts already read that mention nothing (most of them) need no merging: scan_all only
        # when some text is new or mentions something.
        seen = self._seen
        scan = _NO_MENTIONS
        for text in texts:
            mentions = seen.get(text)
            if mentions is None or mentions:
                scan = self._text.scan_all(texts)
                break
        if not value_sets and not scan:
            return None
        return _tuple_new(_Read, (concept.codes() if concept is not None else [], value_sets, texts, scan))

    def _item(
        self,
        reference: str,
        concept: CodeableConcept | None,
        read: _Read,
        kind: str,
        *,
        active: bool,
        when: date | None,
        region_codes: list[Code] | None = None,
    ) -> _Item:
        """The reduced form every reader shares. Spine regions are read only when ``region_codes`` is
        given (fractures and order reasons)."""
        regions: Region = _NO_REGIONS
        if region_codes is not None:
            region_of = self._term.region_of
            for codes in (read.codes, region_codes):
                for code in codes:
                    found = region_of(code)
                    if found:
                        regions = regions | found if regions else found
        codes, value_sets, texts, scan = read
        # Positional: keywords to a class make a dict per call.
        return _Item(reference, concept, codes, value_sets, texts, scan, active, when, kind, regions)

    def _condition(self, r: Resource) -> _Item | None:
        site_texts = [t for site in r.bodySite for t in site.texts()] if r.bodySite else None
        read = self._read(r.code, r.note, site_texts)
        # Refuted or entered in error: asked only of what reading keeps (most conditions are clutter).
        if read is None or r.verification_status in IGNORED_VERIFICATION:
            return None
        onset = r.onsetPeriod.start if r.onsetPeriod is not None else None
        item = self._item(
            r.reference,
            r.code,
            read,
            "condition",
            active=r.clinical_status not in INACTIVE_CLINICAL,
            when=parse_date(r.onsetDateTime) or parse_date(onset) or parse_date(r.recordedDate),
            region_codes=[c for site in r.bodySite for c in site.codes()] if r.bodySite else [],
        )
        if site_texts:
            item.regions |= self._text.regions(site_texts)
        return item

    def _procedure(self, r: Resource) -> _Item | None:
        if r.status in IGNORED_EVENT_STATUS:
            return None
        read = self._read(r.code, r.note, None)
        if read is None:
            return None
        start = r.performedPeriod.start if r.performedPeriod is not None else None
        when = parse_date(r.performedDateTime) or parse_date(start)
        active = r.status in (None, "completed", "in-progress")
        return self._item(r.reference, r.code, read, "procedure", active=active, when=when)

    def _observation(self, r: Resource) -> _Item | None:
        if r.status in IGNORED_OBSERVATION_STATUS:
            return None
        values = r.valueCodeableConcept.texts() if r.valueCodeableConcept is not None else None
        if r.valueString is not None:
            values = [*values, r.valueString] if values else [r.valueString]
        read = self._read(r.code, r.note, values)
        if read is None:
            return None
        when = parse_date(r.effectiveDateTime) or parse_date(r.issued)
        item = self._item(r.reference, r.code, read, "observation", active=True, when=when)
        item.quantity = r.valueQuantity.value if r.valueQuantity is not None else None
        return item

    def _allergy(self, r: Resource) -> _Item | None:
        if r.verification_status in IGNORED_VERIFICATION:
            return None
        if r.clinical_status in INACTIVE_ALLERGY:
            return None
        substances = [t for reaction in r.reaction if reaction.substance for t in reaction.substance.texts()]
        read = self._read(r.code, (), substances)
        if read is None:
            return None
        return self._item(r.reference, r.code, read, "allergy", active=True, when=parse_date(r.recordedDate))

    def _reasons_of(self, order: dict[str, Any], today: date) -> list[_Item]:
        # A reason on a draft order is the clinician's statement about the patient now.
        reference = f"{reference_of(order)}#reasonCode"
        found = []
        for reason in items(order.get("reasonCode")):
            concept = concept_of(reason)
            read = self._read(concept, (), None) if concept is not None else None
            if read is not None:
                found.append(self._item(reference, concept, read, "reason", active=True, when=today, region_codes=[]))
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
            kind, pathological = "osteoporotic", _absent(_ev(osteoporotic_items))
        elif current:
            kind = "unspecified"
            # An unspecified fracture in a cancer patient may be pathological: leave it open.
            osteoporosis = idx.coded("osteoporosis", active_only=True, kinds=clinical)
            pathological = _UNKNOWN if malignancy.value else _absent(_ev(osteoporosis))
        else:
            pathological = _ABSENT

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
            worsening = _absent(symptomatic.evidence)
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
            gadolinium_risk=_gadolinium_risk(idx, self._egfr_below),
        )


class _Index:
    """Queries over the reduced record: by value set, and by text finding (each text read once).

    Both indexes keep record order, so a query over one name needs no sorting; ``_facts`` asks about
    two dozen of them per call, for every first call for a patient.
    """

    def __init__(self, items: list[_Item]) -> None:
        self._by_set: dict[str, list[_Item]] = {}
        self._by_finding: dict[str, list[tuple[_Item, Mention]]] = {}
        for item in items:
            for name in item.value_sets:
                self._by_set.setdefault(name, []).append(item)
            # Texts were read once, with the item.
            for name, mention in item.scan.items():
                self._by_finding.setdefault(name, []).append((item, mention))

    def coded(self, *names: str, active_only: bool = False, kinds: tuple[str, ...] | None = None) -> list[_Item]:
        """Items in any of the value sets ``names``, in record order, each once."""
        found = [
            item
            for name in names
            for item in self._by_set.get(name, ())
            if (item.active or not active_only) and (kinds is None or item.kind in kinds)
        ]
        if len(names) > 1:
            found = sorted({id(item): item for item in found}.values(), key=lambda item: item.position)
        return found

    def mentions(
        self, name: str, *, kinds: tuple[str, ...], active_only: bool = False
    ) -> tuple[list[_Item], list[_Item]]:
        """Items of ``kinds`` whose text affirms the finding, and those whose text only denies it."""
        present, negated = [], []
        for item, mention in self._by_finding.get(name, ()):
            if item.kind not in kinds or (active_only and not item.active):
                continue
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
        return _absent(_ev([i for i, _ in dated]))
    return _UNKNOWN


def _gadolinium_risk(idx: _Index, egfr_below: float) -> Finding:
    evidence: list[Evidence] = []
    egfr = idx.coded("egfr", kinds=("observation",))
    latest = max(egfr, key=lambda i: i.when or date.min, default=None)
    if latest is not None:
        value = latest.quantity
        if value is not None and value < egfr_below:
            evidence.append(Evidence(latest.reference, f"eGFR {value:g} (below {egfr_below:g})", latest.when))
    dialysis_text, _ = idx.mentions("dialysis", kinds=("condition", "procedure"), active_only=True)
    allergy_text, _ = idx.mentions("gadolinium-allergy", kinds=("allergy",))
    coded = idx.coded("dialysis", "contrast-allergy", active_only=True)
    evidence += _ev(coded + dialysis_text + allergy_text)
    return Finding.of(evidence)


def _ev(items: list[_Item]) -> list[Evidence]:
    """Evidence of each distinct resource, in first-seen order."""
    if len(items) < 2:  # most facts cite one item or none
        return [items[0].evidence()] if items else []
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
    levels = set()
    for text in item.texts:  # loops, not a generator: several fracture items per first call
        for level in _LEVEL.findall(text):
            levels.add(level.upper())
    return frozenset(levels) if levels else item.regions
