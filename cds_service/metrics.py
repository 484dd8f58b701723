"""Prometheus metrics: hook calls and latency per service, cards, ratings, FHIR fetches, feedback,
and issued cards the store failed to record.

With several workers, ``cds-service serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before they start; ``/metrics`` then sums every worker's figures. No label carries patient data.
"""

from __future__ import annotations

import os
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

HOOK_CALLS = Counter("cds_hook_calls", "Hook calls by service and HTTP status", ["service", "status"])
HOOK_LATENCY = Histogram(
    "cds_hook_latency_seconds",
    "Time to answer a hook call, by service",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CARDS = Counter("cds_cards", "Cards issued, by indicator and card kind", ["indicator", "kind"])
RATINGS = Counter("cds_ratings", "Orders rated, by ACR appropriateness category", ["category"])
FHIR_FETCHES = Counter("cds_fhir_fetches", "Queries run against the EHR's FHIR server, by outcome", ["outcome"])
FEEDBACK = Counter("cds_feedback", "Feedback entries received, by outcome", ["outcome"])
ISSUED_WRITE_FAILURES = Counter("cds_issued_write_failures", "Issued cards the store failed to record")


_M = TypeVar("_M", Counter, Histogram)
_children: dict[tuple[object, tuple[str, ...]], object] = {}


def labelled(metric: _M, *labels: str) -> _M:
    """``metric.labels(*labels)``, kept: every hook call counts itself four ways, and ``labels``
    checks the values and takes a lock each time. Label values here come from small closed sets
    (service ids, status codes, card kinds, ACR categories), so the children kept stay few."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child  # type: ignore[return-value]


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, summed over worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
