"""Argonaut "CDS Hooks for PAMA" rating extensions on ServiceRequests (product-spec §2, Rating).

The ``pama-rating`` CodeableConcept carries the Argonaut Coding first (the CDS Hooks sandbox reads
only the first), then translations with the ACR category and, where known, the median rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cards.ids import new_uuid
from cds_service.engine.fhir import items
from cds_service.engine.rating import Rating
from cds_service.knowledge import Knowledge

EXT = "http://fhir.org/argonaut/Extension/"
PAMA_RATING = EXT + "pama-rating"
PAMA_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
PAMA_URLS = frozenset(
    EXT + name
    for name in ("pama-rating", "pama-rating-qcdsm-consulted", "pama-rating-consult-id", "pama-rating-auc-applied")
)


@dataclass(frozen=True)
class PamaContext:
    """What every rating of one service instance shares."""

    knowledge: Knowledge
    qcdsm_id: str
    code_system_base: str

    @property
    def category_system(self) -> str:
        return f"{self.code_system_base}/acr-appropriateness-category"

    @property
    def median_system(self) -> str:
        return f"{self.code_system_base}/acr-median-rating"


def rating_extensions(rating: Rating, variants: tuple[int, ...], ctx: PamaContext) -> list[dict[str, Any]]:
    """The four Argonaut extensions for one rating, with a fresh consult id."""
    rated, consulted, applied = _fixed_extensions(rating, variants, ctx)
    consult = {"url": EXT + "pama-rating-consult-id", "valueUri": f"urn:uuid:{new_uuid()}"}
    return [rated, consulted, consult, applied]


@lru_cache(maxsize=1024)
def _fixed_extensions(
    rating: Rating, variants: tuple[int, ...], ctx: PamaContext
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The three extensions a rating always reads the same (shared between responses, so never
    modified: they are only serialised). A rating, its variants and the context come from a small
    set, and a card's two ratings (system action, suggestion) cost ~15 µs to write out afresh."""
    info = ctx.knowledge.acr.categories[rating.category]
    where = ", ".join(str(v) for v in variants)
    label = f"{info.display} (ACR VCF variant {where}" + (f", median {rating.median})" if rating.median else ")")
    coding: list[dict[str, Any]] = [
        {"system": PAMA_SYSTEM, "code": info.pama},
        {"system": ctx.category_system, "code": rating.category, "display": label},
    ]
    if rating.median is not None:
        coding.append(
            {"system": ctx.median_system, "code": str(rating.median), "display": f"Median rating {rating.median}"}
        )
    return (
        {"url": PAMA_RATING, "valueCodeableConcept": {"coding": coding, "text": label}},
        {"url": EXT + "pama-rating-qcdsm-consulted", "valueString": ctx.qcdsm_id},
        {"url": EXT + "pama-rating-auc-applied", "valueUri": ctx.knowledge.acr.topic.url},
    )


def with_rating(resource: dict[str, Any], extensions: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``resource`` whose PAMA extensions are exactly ``extensions``; nothing else changes.

    The copy is shallow: only ``extension`` is replaced, and neither side is modified afterwards
    (a deep copy of each order cost about 60 µs per card).
    """
    out = dict(resource)
    kept = [e for e in items(out.get("extension")) if not (isinstance(e, dict) and e.get("url") in PAMA_URLS)]
    out["extension"] = kept + extensions
    return out
