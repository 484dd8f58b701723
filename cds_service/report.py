"""What clinicians did with the advice: acceptance and override rates from the feedback store.

Each issued card counts once; when a card received feedback several times (the spec allows it), its
latest outcome counts. Feedback for cards this service never issued is kept in the store and only
counted here as unknown.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .engine.evaluate import default_engine
from .engine.fhir import Code
from .feedback_store import FeedbackStore, IssuedCard, StoredFeedback


@dataclass
class Tally:
    issued: int = 0
    answered: int = 0
    accepted: int = 0
    overridden: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.answered if self.answered else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.answered if self.answered else None


@dataclass
class Report:
    since: datetime | None
    issued: int
    feedback_entries: int
    repeated_feedback: int
    unknown_card_feedback: int
    overall: Tally = field(default_factory=Tally)
    by_variant: dict[str, Tally] = field(default_factory=dict)
    by_card_kind: dict[str, Tally] = field(default_factory=dict)
    by_procedure: dict[str, Tally] = field(default_factory=dict)
    override_reasons: dict[str, int] = field(default_factory=dict)


def build_report(store: FeedbackStore, since: datetime | None = None) -> Report:
    """Tallies of the cards issued since ``since`` and the feedback on them."""
    cards = store.issued(since)
    entries = store.feedback(since)
    latest: dict[str, StoredFeedback] = {}
    for entry in entries:  # in arrival order: a later outcome replaces an earlier one for the same card
        if not entry.known_card:
            continue
        current = latest.get(entry.card_uuid)
        if current is None or entry.outcome_timestamp >= current.outcome_timestamp:
            latest[entry.card_uuid] = entry
    known = [e for e in entries if e.known_card]
    report = Report(
        since=since,
        issued=len(cards),
        feedback_entries=len(entries),
        repeated_feedback=len(known) - len(latest),
        unknown_card_feedback=len(entries) - len(known),
    )
    reasons: Counter[str] = Counter()
    for issued in cards:
        outcome = latest.get(issued.card_uuid)
        groups = [
            report.overall,
            report.by_variant.setdefault(_variant(issued), Tally()),
            report.by_card_kind.setdefault(issued.card_kind, Tally()),
            report.by_procedure.setdefault(_procedure(issued), Tally()),
        ]
        for tally in groups:
            tally.issued += 1
            if outcome is not None:
                tally.answered += 1
                tally.accepted += outcome.outcome == "accepted"
                tally.overridden += outcome.outcome == "overridden"
        if outcome is not None and outcome.outcome == "overridden":
            reasons[outcome.override_reason_display or outcome.override_reason_code or "(no reason given)"] += 1
    report.override_reasons = dict(reasons.most_common())
    for name in ("by_variant", "by_card_kind", "by_procedure"):
        setattr(report, name, dict(sorted(getattr(report, name).items())))
    return report


def _variant(card: IssuedCard) -> str:
    return f"variant {card.variant}" if card.variant is not None else "no single variant"


def _procedure(card: IssuedCard) -> str:
    if not card.order_code or "|" not in card.order_code:
        return card.order_code or "(no code)"
    system, code = card.order_code.rsplit("|", 1)
    item = default_engine().terminology.catalog_item([Code(system, code)])
    return f"{item.display} ({code})" if item else code


# --------------------------------------------------------------------------------------------- rendering


def _rate(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def _rows(report: Report) -> list[tuple[str, str, Tally]]:
    rows = [("overall", "all cards", report.overall)]
    for section, groups in (
        ("variant", report.by_variant),
        ("card kind", report.by_card_kind),
        ("procedure", report.by_procedure),
    ):
        rows.extend((section, key, tally) for key, tally in groups.items())
    return rows


def render_table(report: Report) -> str:
    """A terminal report with a small bar chart of acceptance by variant."""
    since = f" since {report.since:%Y-%m-%d}" if report.since else ""
    lines = [
        f"Advice and feedback{since}: {report.issued} cards issued, {report.feedback_entries} feedback entries "
        f"({report.repeated_feedback} repeats of an earlier answer, {report.unknown_card_feedback} for unknown "
        "cards)",
        "",
    ]
    width = max([len(key) for _, key, _ in _rows(report)] + [10])
    counts = f"{'issued':>7} {'answered':>8} {'accepted':>8} {'overridden':>10} {'accept':>7} {'override':>8}"
    lines.append(f"{'':10} {'':{width}} {counts}")
    section_seen = ""
    for section, key, tally in _rows(report):
        label = section if section != section_seen else ""
        section_seen = section
        lines.append(
            f"{label:10} {key:{width}} {tally.issued:7d} {tally.answered:8d} {tally.accepted:8d} "
            f"{tally.overridden:10d} {_rate(tally.acceptance_rate):>7} {_rate(tally.override_rate):>8}"
        )
    lines += ["", "Acceptance by variant (answered cards):"]
    for key, tally in report.by_variant.items():
        rate = tally.acceptance_rate
        bar = "█" * round((rate or 0) * 30)
        lines.append(f"  {key:18} {bar:30} {_rate(rate):>5} of {tally.answered}")
    lines += ["", "Override reasons:"]
    lines += [f"  {count:5d}  {reason}" for reason, count in report.override_reasons.items()] or ["  (none)"]
    return "\n".join(lines)


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["section", "key", "issued", "answered", "accepted", "overridden", "acceptance_rate", "override_rate"]
    )
    for section, key, tally in _rows(report):
        writer.writerow(
            [
                section,
                key,
                tally.issued,
                tally.answered,
                tally.accepted,
                tally.overridden,
                _fraction(tally.acceptance_rate),
                _fraction(tally.override_rate),
            ]
        )
    for reason, count in report.override_reasons.items():
        writer.writerow(["override reason", reason, "", "", "", count, "", ""])
    return out.getvalue()


def _fraction(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def render_json(report: Report) -> str:
    def tally(t: Tally) -> dict[str, Any]:
        return {**asdict(t), "acceptanceRate": t.acceptance_rate, "overrideRate": t.override_rate}

    body = {
        "since": report.since.isoformat() if report.since else None,
        "issued": report.issued,
        "feedbackEntries": report.feedback_entries,
        "repeatedFeedback": report.repeated_feedback,
        "unknownCardFeedback": report.unknown_card_feedback,
        "overall": tally(report.overall),
        "byVariant": {k: tally(v) for k, v in report.by_variant.items()},
        "byCardKind": {k: tally(v) for k, v in report.by_card_kind.items()},
        "byProcedure": {k: tally(v) for k, v in report.by_procedure.items()},
        "overrideReasons": report.override_reasons,
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json}
