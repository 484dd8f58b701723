"""Code matching against the knowledge's value sets and order catalog.

ICD-10-CM is matched by prefix and by three-character category range, with or without the dot and
under both ``icd-10-cm`` and ``icd-10`` system URIs; the other systems by exact code.
"""

from __future__ import annotations

from functools import cached_property

from ..knowledge import Knowledge
from ..knowledge.models import CatalogItem
from .fhir import Code
from .memo import remember

Region = frozenset[str]

_MEMO_ENTRIES = 100_000


def _icd(code: str) -> str:
    return code.upper().replace(".", "").strip()


class Terminology:
    """Answers "which value sets is this code in" and "which catalog item is this order code"."""

    def __init__(self, knowledge: Knowledge) -> None:
        self._knowledge = knowledge
        # Value sets by (system, code) as sent: what ``value_sets_for`` has answered so far. Hot
        # loops read it first and call ``value_sets_for`` only for a pair not in it.
        self.looked_up: dict[tuple[str, str], frozenset[str]] = {}
        self._regions: dict[tuple[str, str], Region] = {}
        systems = knowledge.value_sets.systems
        self._canonical: dict[str, str] = {}
        for name, uris in systems.items():
            for uri in uris:
                self._canonical[uri] = name
        for name, uri_or_list in knowledge.catalog.systems.items():
            for uri in [uri_or_list] if isinstance(uri_or_list, str) else uri_or_list:
                self._canonical.setdefault(uri, name)

    def system_name(self, system: str) -> str | None:
        """Our short name for a code system URI (icd10cm, snomed, cpt, loinc, radlex, icd10pcs)."""
        return self._canonical.get(system.rstrip("/"))

    @cached_property
    def _exact(self) -> dict[tuple[str, str], frozenset[str]]:
        index: dict[tuple[str, str], set[str]] = {}
        for name, vs in self._knowledge.value_sets.value_sets.items():
            for system, codes in (
                ("snomed", vs.snomed),
                ("cpt", vs.cpt),
                ("icd10pcs", vs.icd10pcs),
                ("loinc", vs.loinc),
            ):
                for code in codes:
                    index.setdefault((system, code.upper() if system == "icd10pcs" else code), set()).add(name)
        return {k: frozenset(v) for k, v in index.items()}

    @cached_property
    def _icd_rules(self) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
        return [
            (name, tuple(_icd(p) for p in vs.icd10cm_prefixes), tuple((_icd(a), _icd(b)) for a, b in vs.icd10cm_ranges))
            for name, vs in self._knowledge.value_sets.value_sets.items()
            if vs.icd10cm_prefixes or vs.icd10cm_ranges
        ]

    @cached_property
    def _catalog(self) -> dict[tuple[str, str], CatalogItem]:
        index: dict[tuple[str, str], CatalogItem] = {}
        for item in self._knowledge.catalog.items:
            for c in item.codes:
                name = self.system_name(c.system)
                if name is not None:
                    index[(name, c.code)] = item
        return index

    def value_sets_of(self, code: Code) -> frozenset[str]:
        """Names of the value sets ``code`` belongs to (empty when none, or the system is unknown)."""
        return self.value_sets_for(code.system, code.code)

    def value_sets_for(self, system: str, code: str) -> frozenset[str]:
        """``value_sets_of`` for a Coding's system and code as sent (they are trimmed here, once per
        distinct pair: reading a record asks this for every Coding it holds)."""
        key = (system, code)
        found = self.looked_up.get(key)
        if found is None:
            found = remember(self.looked_up, key, self._lookup(Code(system.strip(), code.strip())), _MEMO_ENTRIES)
        return found

    def _lookup(self, code: Code) -> frozenset[str]:
        system = self.system_name(code.system)
        if system is None:
            return frozenset()
        if system == "icd10cm":
            normalized = _icd(code.code)
            return frozenset(
                name
                for name, prefixes, ranges in self._icd_rules
                if normalized.startswith(prefixes) or any(lo <= normalized[:3] <= hi for lo, hi in ranges)
            )
        key = (system, code.code.upper() if system == "icd10pcs" else code.code)
        return self._exact.get(key, frozenset())

    def catalog_item(self, codes: list[Code]) -> CatalogItem | None:
        """The catalog procedure an order's codings name; the first coding that matches wins."""
        for code in codes:
            system = self.system_name(code.system)
            if system is not None:
                item = self._catalog.get((system, code.code))
                if item is not None:
                    return item
        return None

    def region_of(self, code: Code) -> Region:
        """Spine regions a fracture or body-site code names (empty when it names none)."""
        key = (code.system, code.code)
        found = self._regions.get(key)
        if found is None:
            found = remember(self._regions, key, self._region_of(code), _MEMO_ENTRIES)
        return found

    def _region_of(self, code: Code) -> Region:
        system = self.system_name(code.system)
        regions = self._knowledge.value_sets.regions
        if system == "icd10cm":
            normalized, category = _icd(code.code), _icd(regions.icd10cm_category)
            if normalized.startswith(category) and len(normalized) > len(category):
                return frozenset(regions.icd10cm_by_character.get(normalized[len(category)], ()))
            return frozenset()
        if system == "snomed":
            return frozenset(regions.snomed.get(code.code, ()))
        return frozenset()
