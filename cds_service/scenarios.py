"""FHIR fixture scenarios (``fixtures/*.json``): loading, relative dates, and checking an outcome.

A scenario holds a patient record, the draft orders, the hook (and ``selections`` for order-select)
and the expected outcome: cards by indicator with the codes their suggestions order (``"remove"``
for a suggestion that deletes the draft), and the PAMA rating of each order (absent: no rating).
Dates are written relative to a day the caller chooses: ``{{today}}``, ``{{today-10d}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cards.pama import PAMA_RATING

_RELATIVE = re.compile(r"\{\{today(?:([+-])(\d+)d)?\}\}")


class ScenarioError(ValueError):
    """A scenario file is missing or malformed."""


@dataclass(frozen=True)
class ExpectedCard:
    indicator: str
    suggests: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    hook: str
    patient: dict[str, Any]
    resources: tuple[dict[str, Any], ...]
    draft_orders: tuple[dict[str, Any], ...]
    selections: tuple[str, ...]
    expected_cards: tuple[ExpectedCard, ...]
    expected_ratings: dict[str, str]

    @property
    def patient_id(self) -> str:
        return str(self.patient["id"])

    def record(self) -> list[dict[str, Any]]:
        """Everything a FHIR server would hold for this scenario (Patient first)."""
        return [self.patient, *self.resources]

    def context(self) -> dict[str, Any]:
        """The hook context an EHR would send."""
        context: dict[str, Any] = {
            "userId": "Practitioner/fixture-clinician",
            "patientId": self.patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": o} for o in self.draft_orders],
            },
        }
        encounters = {o["encounter"]["reference"] for o in self.draft_orders if isinstance(o.get("encounter"), dict)}
        if len(encounters) == 1:
            context["encounterId"] = encounters.pop().split("/", 1)[1]
        if self.hook == "order-select":
            context["selections"] = list(self.selections)
        return context


def resolve_dates(value: Any, today: date) -> Any:
    """``value`` with every ``{{today±Nd}}`` replaced by an ISO date."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            days = int(match.group(2) or 0) * (-1 if match.group(1) == "-" else 1)
            return (today + timedelta(days=days)).isoformat()

        return _RELATIVE.sub(replace, value)
    if isinstance(value, list):
        return [resolve_dates(v, today) for v in value]
    if isinstance(value, dict):
        return {k: resolve_dates(v, today) for k, v in value.items()}
    return value


def load_scenario(path: Path, today: date) -> Scenario:
    """One scenario file, with its dates resolved against ``today``."""
    try:
        raw = resolve_dates(json.loads(path.read_text(encoding="utf-8")), today)
        expected = raw.get("expected", {})
        return Scenario(
            name=path.stem,
            description=raw["description"],
            hook=raw["hook"],
            patient=raw["patient"],
            resources=tuple(raw.get("resources", [])),
            draft_orders=tuple(raw["draftOrders"]),
            selections=tuple(raw.get("selections", [])),
            expected_cards=tuple(
                ExpectedCard(c["indicator"], tuple(c.get("suggests", []))) for c in expected.get("cards", [])
            ),
            expected_ratings=dict(expected.get("ratings", {})),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None


def find_scenario(name_or_path: str, fixtures: Path) -> Path:
    """A scenario by file path, or by name within ``fixtures``."""
    direct = Path(name_or_path)
    if direct.is_file():
        return direct
    candidate = fixtures / f"{name_or_path.removesuffix('.json')}.json"
    if candidate.is_file():
        return candidate
    names = ", ".join(sorted(p.stem for p in fixtures.glob("*.json"))) or "none"
    raise ScenarioError(f"no scenario {name_or_path!r} in {fixtures} (available: {names})")


def load_all(fixtures: Path, today: date) -> list[Scenario]:
    """Every scenario of a fixtures folder, sorted by name."""
    return [load_scenario(p, today) for p in sorted(fixtures.glob("*.json"))]


# --------------------------------------------------------------------------------------------- outcomes


def card_outcome(card: dict[str, Any]) -> ExpectedCard:
    """What a received card amounts to, in the terms scenarios expect."""
    suggests = []
    for suggestion in card.get("suggestions", []):
        created = [a for a in suggestion.get("actions", []) if a.get("type") in ("create", "update")]
        if created:
            codings = created[0].get("resource", {}).get("code", {}).get("coding", [{}])
            suggests.append(str(codings[0].get("code")))
        else:
            suggests.append("remove")
    return ExpectedCard(str(card.get("indicator")), tuple(suggests))


def ratings_of(response: dict[str, Any]) -> dict[str, str]:
    """``ServiceRequest/id`` -> PAMA rating code, from the response's system actions."""
    out = {}
    for action in response.get("systemActions", []):
        resource = action.get("resource", {})
        for ext in resource.get("extension", []):
            if ext.get("url") == PAMA_RATING:
                out[f"{resource.get('resourceType')}/{resource.get('id')}"] = ext["valueCodeableConcept"]["coding"][0][
                    "code"
                ]
    return out


def check_outcome(scenario: Scenario, response: dict[str, Any]) -> list[str]:
    """Differences between what the scenario expects and ``response``; empty when it held."""
    problems = []
    got = sorted((card_outcome(c) for c in response.get("cards", [])), key=_card_key)
    want = sorted(scenario.expected_cards, key=_card_key)
    if got != want:
        problems.append(f"cards: expected {_cards_text(want)}, got {_cards_text(got)}")
    ratings = ratings_of(response)
    if ratings != scenario.expected_ratings:
        problems.append(f"ratings: expected {scenario.expected_ratings or 'none'}, got {ratings or 'none'}")
    if response.get("extension", {}).get("systemActions", []) != response.get("systemActions", []):
        problems.append("extension.systemActions does not mirror systemActions")
    return problems


def _card_key(card: ExpectedCard) -> tuple[str, tuple[str, ...]]:
    return card.indicator, card.suggests


def _cards_text(cards: list[ExpectedCard]) -> str:
    return "[" + "; ".join(f"{c.indicator} {list(c.suggests)}" for c in cards) + "]" if cards else "no cards"
