"""Findings read from free text, conservatively and aware of negation ("no marrow edema" is not edema).

A small NegEx: a match is negated when a negation cue stands in the few words before it within the
same clause, or a post-cue ("absent", "ruled out") right after it. Clauses end at . ; : newlines and
at "but" / "however", so "no fracture; marrow edema" still finds edema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

from ..knowledge.models import TextRules

_CLAUSE_END = re.compile(r"[.;:\n!?]|\bbut\b|\bhowever\b|\balthough\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")
_WINDOW_BEFORE = 6
_WINDOW_AFTER = 4


class Mention(Enum):
    PRESENT = "present"
    NEGATED = "negated"


class TextFinder:
    """Compiled patterns for the named findings and spine regions of ``TextRules``."""

    def __init__(self, rules: TextRules) -> None:
        self._patterns = {
            name: re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
            for name, patterns in rules.patterns.items()
        }
        self._regions = {
            region: re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
            for region, patterns in rules.region.items()
        }
        before = "|".join(re.escape(c) for c in sorted(rules.negation_before, key=len, reverse=True))
        after = "|".join(re.escape(c) for c in sorted(rules.negation_after, key=len, reverse=True))
        self._neg_before = re.compile(rf"\b(?:{before})\b")
        self._neg_after = re.compile(rf"^\W*(?:\w+\W+){{0,{_WINDOW_AFTER - 1}}}?(?:{after})\b", re.IGNORECASE)

    @property
    def finding_names(self) -> frozenset[str]:
        return frozenset(self._patterns)

    def mention(self, name: str, texts: Iterable[str]) -> Mention | None:
        """PRESENT if any text affirms the finding, NEGATED if texts only deny it, else None."""
        pattern = self._patterns[name]
        negated = False
        for text in texts:
            for match in pattern.finditer(text):
                if self._is_negated(text, match.start(), match.end()):
                    negated = True
                else:
                    return Mention.PRESENT
        return Mention.NEGATED if negated else None

    def regions(self, texts: Iterable[str]) -> frozenset[str]:
        """Spine regions named in the texts (cervical, thoracic, lumbar)."""
        found = set()
        for text in texts:
            for region, pattern in self._regions.items():
                if pattern.search(text):
                    found.add(region)
        return frozenset(found)

    def _is_negated(self, text: str, start: int, end: int) -> bool:
        clause_start = 0
        for boundary in _CLAUSE_END.finditer(text, 0, start):
            clause_start = boundary.end()
        before_words = _WORD.findall(text[clause_start:start].lower())[-_WINDOW_BEFORE:]
        if self._neg_before.search(" ".join(before_words)):
            return True
        after = text[end:]
        stop = _CLAUSE_END.search(after)
        return bool(self._neg_after.search(after[: stop.start()] if stop else after))
