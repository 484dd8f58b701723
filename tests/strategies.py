"""Hypothesis strategies shared by tests of code that reads untrusted JSON."""

from __future__ import annotations

from hypothesis import strategies as st

FLOATS = st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | FLOATS | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Element names the structs read, so generated objects hit them with values of every shape.
NAMES = st.sampled_from(
    [
        "resourceType",
        "id",
        "code",
        "coding",
        "system",
        "display",
        "text",
        "note",
        "entry",
        "resource",
        "valueQuantity",
        "value",
        "bodySite",
        "reaction",
        "substance",
        "link",
    ]
)
FHIRISH = st.recursive(
    JSON,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(NAMES, children, max_size=5),
    max_leaves=20,
)
