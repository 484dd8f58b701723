"""Text findings: negation, clauses, and the trigger words that guard the regexes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.engine.text import Mention, TextFinder
from cds_service.knowledge import load_knowledge

RULES = load_knowledge().value_sets.text
FINDER = TextFinder(RULES)
PATTERNS = [(name, pattern) for name, patterns in RULES.patterns.items() for pattern in patterns]


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[f"{n}:{p[:25]}" for n, p in PATTERNS])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_pattern_match_contains_a_trigger_word_of_its_finding(
    name: str, pattern: str, data: st.DataObject
) -> None:
    """The trigger prefilter must never hide a match: any text a pattern matches holds a trigger of
    that pattern's finding."""
    text = data.draw(st.from_regex(pattern, fullmatch=True))
    assert any(trigger in text.lower() for trigger in RULES.triggers[name]), (name, text)
    assert FINDER.scan(text).get(name) is not None, (name, text)  # and the scan, so guarded, finds it


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("Bone marrow edema at L1", "marrow-edema", Mention.PRESENT),
        ("No marrow edema.", "marrow-edema", Mention.NEGATED),
        ("No fracture; marrow edema at T12", "marrow-edema", Mention.PRESENT),
        ("No fracture but marrow edema at T12", "marrow-edema", Mention.PRESENT),
        ("marrow edema ruled out", "marrow-edema", Mention.NEGATED),
        ("Denies back pain", "pain", Mention.NEGATED),
        ("Worsening back pain", "worsening-pain", Mention.PRESENT),
        ("Pacemaker in situ", "mri-contraindication", Mention.PRESENT),
        ("Stable, nothing to report", "pain", None),
    ],
)
def test_mentions_with_negation(text: str, name: str, expected: Mention | None) -> None:
    assert FINDER.mention(name, [text]) is expected


def test_affirmation_anywhere_wins_over_denial_elsewhere() -> None:
    assert FINDER.mention("marrow-edema", ["No marrow edema at L2.", "Marrow edema at L1."]) is Mention.PRESENT


def test_regions_from_text() -> None:
    assert FINDER.regions(["Wedge fracture of T12 and L1"]) == {"thoracic", "lumbar"}
    assert FINDER.regions(["C5 burst"]) == {"cervical"}
    assert FINDER.regions(["fracture"]) == frozenset()
