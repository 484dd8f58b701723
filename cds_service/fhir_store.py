"""An in-memory, read-only FHIR store answering the reads and searches our prefetch templates use.

Shared by the fixture FHIR server (``cds-service fhir-server``) and the EHR simulator, which fills
prefetch by running the discovery templates against the scenario exactly as a server would.
Supported: ``Type/id`` reads, and type searches by ``patient``/``subject`` (reference or id),
``_id``, ``category`` and ``code`` (token, comma = OR, ``system|code`` or ``code``), ``_count``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SUPPORTED_PARAMS = frozenset({"patient", "subject", "_id", "category", "code", "_count", "_sort"})


class UnsupportedQuery(ValueError):
    """A search parameter this store does not implement (the server answers 400)."""


class FhirStore:
    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self._by_type: dict[str, dict[str, dict[str, Any]]] = {}
        for resource in resources:
            kind, ident = resource.get("resourceType"), resource.get("id")
            if isinstance(kind, str) and isinstance(ident, str):
                self._by_type.setdefault(kind, {})[ident] = resource

    def read(self, kind: str, ident: str) -> dict[str, Any] | None:
        return self._by_type.get(kind, {}).get(ident)

    def search(self, kind: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        unknown = set(params) - SUPPORTED_PARAMS
        if unknown:
            raise UnsupportedQuery(f"unsupported search parameter(s): {', '.join(sorted(unknown))}")
        found = list(self._by_type.get(kind, {}).values())
        for name, value in params.items():
            if name in ("_count", "_sort") or value == "":
                continue
            found = [r for r in found if _matches(r, kind, name, value)]
        return found

    def query(self, relative_url: str) -> dict[str, Any] | None:
        """A prefetch-style query: a read gives the resource (or None), a search a searchset Bundle."""
        parts = urlsplit(relative_url)
        path = parts.path.strip("/")
        if "/" in path:
            kind, ident = path.split("/", 1)
            return self.read(kind, ident)
        return searchset(self.search(path, dict(parse_qsl(parts.query))))

    def types(self) -> list[str]:
        return sorted(self._by_type)

    def patients(self) -> list[dict[str, Any]]:
        return list(self._by_type.get("Patient", {}).values())


def searchset(resources: list[dict[str, Any]], *, self_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if self_url:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    return bundle


def _matches(resource: dict[str, Any], kind: str, name: str, value: str) -> bool:
    wanted = value.split(",")
    if name in ("patient", "subject"):
        field = "patient" if kind == "AllergyIntolerance" else "subject"
        reference = resource.get(field, {}).get("reference") if isinstance(resource.get(field), dict) else None
        if kind == "Patient":
            reference = f"Patient/{resource.get('id')}"
        return any(reference in (w, f"Patient/{w}") for w in wanted)
    if name == "_id":
        return resource.get("id") in wanted
    concepts = resource.get(name)
    concepts = concepts if isinstance(concepts, list) else [concepts]
    codes = {
        (c.get("system"), c.get("code"))
        for concept in concepts
        if isinstance(concept, dict)
        for c in concept.get("coding", [])
        if isinstance(c, dict)
    }
    for token in wanted:
        system, _, code = token.rpartition("|")
        if any(code == c and (not system or system == s) for s, c in codes):
            return True
    return False
