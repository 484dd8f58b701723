"""Card text: summaries under 140 characters and Markdown details (product-spec §3.4, Detail)."""

from __future__ import annotations

from collections.abc import Iterable

from cds_service.engine.facts import Finding, PatientFacts
from cds_service.engine.rating import OrderDecision, Rating
from cds_service.engine.variants import FACT_QUESTIONS
from cds_service.knowledge import Knowledge

SUMMARY_LIMIT = 139
FACT_LABELS: dict[str, str] = {
    "vcf_current": "Vertebral compression fracture",
    "vcf_history": "Earlier vertebral compression fracture",
    "malignancy": "History of malignancy",
    "pathological": "Pathological fracture",
    "symptomatic": "Symptomatic (back or neck pain)",
    "new_fracture": "New fracture",
    "multiple_fractures": "Multiple vertebral fractures",
    "prior_treatment": "Prior vertebral augmentation or spine surgery",
    "marrow_edema_or_cleft": "Bone marrow edema or intravertebral cleft",
    "worsening_pain": "Worsening pain",
    "deformity": "Spinal deformity",
    "pulmonary_dysfunction": "Pulmonary dysfunction",
    "neurologic_deficit": "Neurologic deficit or cord compression",
    "mri_contraindication": "MRI contraindication (implanted device)",
    "gadolinium_risk": "Gadolinium contrast risk",
}
_SHORTER = (
    (" without and with IV contrast", " w/o+w contrast"),
    (" without IV contrast", " w/o contrast"),
    (" with IV contrast", " w/ contrast"),
)


def short(display: str) -> str:
    """A study name compact enough for a summary line (no parenthetical, short contrast words)."""
    display = display.split(" (")[0]
    for long, brief in _SHORTER:
        display = display.replace(long, brief)
    return display


def fit(summary: str) -> str:
    """The summary cut to the spec's limit (fewer than 140 characters) on a word boundary."""
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    cut = summary[: SUMMARY_LIMIT - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def category_label(knowledge: Knowledge, rating: Rating) -> str:
    return knowledge.acr.categories[rating.category].display


def variant_lines(knowledge: Knowledge, variants: Iterable[int]) -> list[str]:
    return [f"**Variant {v}**: {knowledge.variants[v].title}" for v in variants]


def evidence_lines(facts: PatientFacts, names: Iterable[str] = FACT_LABELS) -> list[str]:
    """One bullet per fact the record shows (present, or explicitly absent), with its resources."""
    lines = []
    for name in names:
        finding: Finding = getattr(facts, name)  # every card reads all fifteen: no helper call each
        evidence = finding.evidence
        if finding.value is None or not evidence:
            continue
        proofs = []
        for e in evidence[:3]:
            proofs.append(
                f"{e.summary} ({e.reference}, {e.when.isoformat()})" if e.when else f"{e.summary} ({e.reference})"
            )
        more = f"; and {len(evidence) - 3} more" if len(evidence) > 3 else ""
        lines.append(f"- {FACT_LABELS[name]}: {'yes' if finding.value else 'no'}: {_md('; '.join(proofs))}{more}")
    if facts.fracture_region:
        lines.append(f"- Fracture region: {', '.join(sorted(facts.fracture_region))}")
    return lines


def options_table(knowledge: Knowledge, rows: list[tuple[str, str, Rating | None, str | None]]) -> list[str]:
    """A Markdown table of (role, option, rating, radiation level)."""
    out = ["| | Option | ACR category | Median | Radiation |", "|---|---|---|---|---|"]
    for role, label, rating, radiation in rows:
        category = category_label(knowledge, rating) if rating else "not rated"
        median = str(rating.median) if rating and rating.median else "not published"
        level = knowledge.acr.radiation_levels.get(radiation) if radiation else None
        rad = f"{radiation} ({level.adult_dose})" if level and radiation != "varies" else (radiation or "n/a")
        out.append(f"| {role} | {_md(label)} | {category} | {median} | {rad} |")
    return out


def questions(decision: OrderDecision) -> list[str]:
    facts = decision.inference.deciding_facts if decision.inference else ()
    return [FACT_QUESTIONS[f] for f in facts]


def source_line(knowledge: Knowledge) -> str:
    topic = knowledge.acr.topic
    return f"Source: [{topic.title} ({topic.version})]({topic.url})."


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
