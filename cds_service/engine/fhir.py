"""Thin readers of FHIR R4 JSON: the few elements the engine reads, typed, and nothing else.

Prefetch and fetched data are decoded straight from JSON bytes into the small structs below (msgspec),
which keep only the elements fact rules read and skip the rest in C. Full fhir.resources validation
of whole Bundles costs 30-45x JSON parsing; reading the same data as dicts, defensively, element by
element, cost ~3.5 µs per resource, and these structs ~1 µs.

Tolerance lives in one place: a document that does not fit the structs (a ``coding`` that is not a
list, an ``id`` that is a number) is decoded loosely and every element that does not fit is dropped,
as if absent (``salvage``), so one malformed element never hides the rest of a resource, let alone
the rest of the record. Draft orders stay plain dicts (they are echoed back in suggestions whole);
their concepts are read through the same structs with ``concept_of``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Any, NamedTuple, TypeVar

import msgspec
import msgspec.inspect as mi

_SYSTEM_NAMES = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://loinc.org": "LOINC",
}
_tuple_new = tuple.__new__
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


class Code(NamedTuple):
    """One Coding, reduced to what matching needs (a tuple: a chart holds hundreds, built per call)."""

    system: str
    code: str
    display: str | None = None


# gc=False: decoded JSON holds no reference cycles, and untracked structs are cheaper to allocate and
# leave the collector less to walk. omit_defaults: the facts-cache key encodes records compactly.
# Repeating elements are tuples defaulting to the one empty tuple: a list default is a fresh empty
# list per struct (three per resource, most never filled), each to allocate and free again.
class _Thin(msgspec.Struct, gc=False, omit_defaults=True):
    pass


class Coding(_Thin):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_Thin):
    coding: tuple[Coding, ...] = ()
    text: str | None = None

    def codes(self) -> list[Code]:
        """The usable Codings (each needs a system and a code), trimmed."""
        # tuple.__new__ directly, as a NamedTuple's own __new__ does: that __new__ is a Python function,
        # and kept resources build codes on every first call for a patient.
        return [
            _tuple_new(Code, (c.system.strip(), c.code.strip(), c.display)) for c in self.coding if c.system and c.code
        ]

    def texts(self) -> list[str]:
        """``text``, then every Coding ``display``."""
        texts = [self.text] if self.text is not None else []
        for coding in self.coding:  # a loop, not a generator: every resource of a record passes here
            if coding.display is not None:
                texts.append(coding.display)
        return texts

    def label(self) -> str | None:
        """A human label: the text, else the first display, else the first code with its system."""
        texts = self.texts()
        if texts:
            return texts[0]
        codes = self.codes()
        if not codes:
            return None
        return f"{codes[0].code} ({_SYSTEM_NAMES.get(codes[0].system, codes[0].system)})"


class StatusCoding(_Thin):
    code: str | None = None


class StatusConcept(_Thin):
    """A status concept (clinicalStatus, verificationStatus): only its codes are read, so the system
    URI and display that each one repeats are skipped when decoding (and left out of the cache key)."""

    coding: tuple[StatusCoding, ...] = ()

    def first_code(self) -> str | None:
        """The first code."""
        for coding in self.coding:
            if coding.code is not None:
                return coding.code
        return None


class Annotation(_Thin):
    text: str | None = None


class Period(_Thin):
    start: str | None = None


class Quantity(_Thin):
    value: float | None = None


class Reaction(_Thin):
    substance: CodeableConcept | None = None


class Resource(_Thin):
    """Any resource of the record, with the elements some fact rule reads (all optional)."""

    resourceType: str | None = None
    id: str | None = None
    status: str | None = None
    clinicalStatus: StatusConcept | None = None
    verificationStatus: StatusConcept | None = None
    code: CodeableConcept | None = None
    bodySite: tuple[CodeableConcept, ...] = ()
    note: tuple[Annotation, ...] = ()
    onsetDateTime: str | None = None
    onsetPeriod: Period | None = None
    recordedDate: str | None = None
    performedDateTime: str | None = None
    performedPeriod: Period | None = None
    effectiveDateTime: str | None = None
    issued: str | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None
    valueQuantity: Quantity | None = None
    reaction: tuple[Reaction, ...] = ()

    @property
    def reference(self) -> str:
        """``Type/id`` (``Type/?`` when it has no id)."""
        return _reference(self.resourceType, self.id)

    @property
    def clinical_status(self) -> str | None:
        return self.clinicalStatus.first_code() if self.clinicalStatus is not None else None

    @property
    def verification_status(self) -> str | None:
        return self.verificationStatus.first_code() if self.verificationStatus is not None else None


class Entry(_Thin):
    resource: Resource | None = None


class Link(_Thin):
    relation: str | None = None
    url: str | None = None


class Document(Resource):
    """A prefetch value or a FHIR server's answer: one resource, or a Bundle of them."""

    entry: tuple[Entry, ...] = ()
    link: tuple[Link, ...] = ()

    def resources(self) -> list[Resource]:
        """A Bundle's resources; OperationOutcomes (errors and search outcomes) are not data."""
        return [r for e in self.entry if (r := e.resource) is not None and r.resourceType != "OperationOutcome"]

    def next_link(self) -> str | None:
        """The URL of a search Bundle's next page."""
        return next((link.url for link in self.link if link.relation == "next" and link.url is not None), None)


_T = TypeVar("_T", bound=msgspec.Struct)
_DOCUMENT = msgspec.json.Decoder(Document)


def read_document(value: Any) -> Document | None:
    """``value`` (JSON bytes, ``msgspec.Raw``, an already parsed value, or a Document already read) as
    a Document; None when it is not a JSON object. Raises ``msgspec.DecodeError`` for bytes that are
    not JSON."""
    if type(value) is Document:
        return value
    if isinstance(value, bytes | msgspec.Raw):
        try:
            return _DOCUMENT.decode(value)
        except msgspec.ValidationError:
            value = msgspec.json.decode(value)
    return read_as(value, Document)


def read_as(value: Any, kind: type[_T]) -> _T | None:
    """A parsed JSON value as the struct ``kind``, what does not fit dropped; None for a non-object."""
    if type(value) is not dict:
        return None
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError:
        found = salvage(value, kind)
        return found if isinstance(found, kind) else None


def concept_of(value: Any) -> CodeableConcept | None:
    """A CodeableConcept held as a dict (in a draft order), read like the record's."""
    return read_as(value, CodeableConcept)


_DROP = object()  # what salvage answers for a value that does not fit


def salvage(value: Any, kind: type[msgspec.Struct]) -> Any:
    """``value`` as ``kind`` with every element that does not fit dropped (so it takes its default),
    recursively: a bad Coding drops that Coding, not its concept."""
    return _salvage(value, _info(kind))


@cache
def _info(kind: type[msgspec.Struct]) -> mi.Type:
    return mi.type_info(kind)


def _salvage(value: Any, info: mi.Type) -> Any:
    if isinstance(info, mi.StructType):
        if type(value) is not dict:
            return _DROP
        fields = {}
        for f in info.fields:
            if f.encode_name in value:
                found = _salvage(value[f.encode_name], f.type)
                if found is not _DROP:
                    fields[f.name] = found
        return info.cls(**fields)
    if isinstance(info, mi.VarTupleType):
        if type(value) is not list:
            return _DROP
        return tuple(found for found in (_salvage(v, info.item_type) for v in value) if found is not _DROP)
    if isinstance(info, mi.UnionType):
        if value is None:
            return None if info.includes_none else _DROP
        for member in info.types:
            found = _DROP if isinstance(member, mi.NoneType) else _salvage(value, member)
            if found is not _DROP:
                return found
        return _DROP
    if isinstance(info, mi.StrType):
        return value if type(value) is str else _DROP
    if isinstance(info, mi.FloatType):
        return float(value) if type(value) in (int, float) else _DROP
    raise TypeError(f"salvage does not know {info!r}")  # a field type added to the structs above


def items(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else nothing: FHIR repeating elements read defensively."""
    return value if isinstance(value, list) else []


def codings(concept: Any) -> list[Code]:
    """The usable Codings of a CodeableConcept held as a dict."""
    found = concept_of(concept)
    return found.codes() if found is not None else []


def parse_date(value: str | None) -> date | None:
    """The date part of a FHIR date or dateTime; a year or year-month takes the first day."""
    if value is None:
        return None
    if len(value) == 10 and value[4] == "-" and value[7] == "-":  # YYYY-MM-DD, most dates: parsed in C
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    if "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    match = _DATE_RE.match(value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        return None


def reference_of(resource: dict[str, Any]) -> str:
    """``Type/id`` of a resource held as a dict (``Type/?`` when it has no id)."""
    kind, ident = resource.get("resourceType"), resource.get("id")
    return _reference(kind if isinstance(kind, str) else None, ident if isinstance(ident, str) else None)


def _reference(kind: str | None, ident: str | None) -> str:
    return f"{kind if kind is not None else 'Resource'}/{ident if ident is not None else '?'}"
