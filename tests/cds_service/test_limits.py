"""The shape limits read raw bytes; they must agree with the plain definition on any JSON at all.

Issue 6: "limits on body size, JSON nesting, ... string lengths, each answered with a 4xx and an
OperationOutcome". The check runs on bytes for speed, so it is compared here with a walk of the
parsed value, on bodies written with every escaping a client may use.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.records import order_select_body
from cds_service.engine.fhir import Document, read_document
from cds_service.errors import BadRequest
from cds_service.limits import ShapeLimits, check_shape, parse_hook_body
from tests.strategies import FHIRISH

# Strings rich in what the byte check must see through: quotes, backslashes, brackets, non-ASCII.
TRICKY = st.text(alphabet=st.sampled_from(list('ab"\\{}[]\n/é😀 ')), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TRICKY,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TRICKY, children, max_size=3),
    max_leaves=40,
)
ENCODINGS = [
    lambda v: json.dumps(v).encode(),  # \uXXXX escapes for non-ASCII
    lambda v: json.dumps(v, ensure_ascii=False).encode(),
    lambda v: json.dumps(v, indent=2, ensure_ascii=False).encode(),
    orjson.dumps,
]


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def longest_string(value: Any) -> int:
    if isinstance(value, dict):
        return max([*map(len, value), *map(longest_string, value.values())], default=0)
    if isinstance(value, list):
        return max(map(longest_string, value), default=0)
    return len(value) if isinstance(value, str) else 0


def limits_of(depth: int, string: int) -> ShapeLimits:
    return ShapeLimits(max_depth=depth, max_string_length=string, max_draft_orders=1, max_prefetch_resources=1)


def refused(raw: bytes, limits: ShapeLimits) -> str | None:
    try:
        check_shape(raw, limits)
    except BadRequest as exc:
        return str(exc)
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=JSON, encoding=st.sampled_from(ENCODINGS), max_depth=st.integers(1, 6), max_string=st.integers(0, 14))
def test_byte_check_agrees_with_the_definition(value: Any, encoding: Any, max_depth: int, max_string: int) -> None:
    message = refused(encoding(value), limits_of(max_depth, max_string))
    if longest_string(value) > max_string:
        assert message is not None and "CDS_MAX_STRING_LENGTH" in message
    elif depth(value) > max_depth:
        assert message is not None and "CDS_MAX_JSON_DEPTH" in message
    else:
        assert message is None


@pytest.mark.parametrize(
    ("raw", "deepest"),
    [
        (b'{"a": "[[[[[[[[[["}', 1),  # brackets inside a string are not nesting
        (b'{"a\\"[": ["\\\\", {"b": "]]]"}]}', 3),  # escaped quote and backslash around brackets
        (b"[[], [[]], [[[]]]]", 4),
        (b'"[[["', 0),
    ],
)
def test_depth_is_counted_on_structure_only(raw: bytes, deepest: int) -> None:
    assert refused(raw, limits_of(max(deepest, 1), 100)) is None
    if deepest > 1:
        assert "CDS_MAX_JSON_DEPTH" in (refused(raw, limits_of(deepest - 1, 100)) or "")


def test_escapes_count_as_the_characters_they_stand_for() -> None:
    # 5 characters written as 30 bytes of \\uXXXX escapes: within a limit of 5.
    raw = json.dumps({"k": "ééééé"}).encode()
    assert len(raw) > 30 and refused(raw, limits_of(4, 5)) is None


# ------------------------------------------------------------------------------- hook body parsing


def read_prefetch(body: Any) -> Any:
    """``body`` with each prefetch value (read, still to decode, or parsed JSON) read as a Document."""
    if isinstance(body, dict) and isinstance(body.get("prefetch"), dict):
        return {**body, "prefetch": {k: read_document(v) for k, v in body["prefetch"].items()}}
    return body


RESOURCEISH = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Condition", "Bundle", "OperationOutcome"])},
    optional={"id": JSON, "code": FHIRISH, "note": FHIRISH, "entry": FHIRISH},
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.dictionaries(st.sampled_from(["hook", "context", "prefetch", "x"]), JSON, max_size=4)
    | st.fixed_dictionaries({"prefetch": st.dictionaries(TRICKY, JSON | RESOURCEISH, max_size=4)})
    | st.fixed_dictionaries({"hook": JSON, "prefetch": st.dictionaries(TRICKY, RESOURCEISH | st.none(), max_size=4)})
    | JSON,
    encoding=st.sampled_from(ENCODINGS),
)
def test_hook_bodies_parse_to_the_same_json_with_prefetch_read_for_the_engine(body: Any, encoding: Any) -> None:
    """Whichever path a body takes (one pass into the structs, the values split, or plain JSON), it
    reads as the plain JSON does: other members equal, each prefetch value the same Document."""
    raw = encoding(body)
    parsed = parse_hook_body(raw)
    assert read_prefetch(parsed) == read_prefetch(orjson.loads(raw))
    prefetch = parsed.get("prefetch") if isinstance(parsed, dict) else None
    if isinstance(prefetch, dict):
        assert all(v is None or isinstance(v, Document | msgspec.Raw) for v in prefetch.values())


def test_a_typical_hook_body_is_read_in_one_pass() -> None:
    body = order_select_body(20)
    parsed = parse_hook_body(orjson.dumps(body))
    assert {k: v for k, v in parsed.items() if k != "prefetch"} == {k: v for k, v in body.items() if k != "prefetch"}
    assert all(type(v) is Document for v in parsed["prefetch"].values())
    assert parsed["prefetch"]["conditions"] == read_document(body["prefetch"]["conditions"])


def test_a_malformed_prefetch_value_is_read_alone() -> None:
    """One value that does not fit the structs leaves the others read in one pass each."""
    body = order_select_body(20)
    body["prefetch"]["conditions"]["entry"][0]["resource"]["code"] = {"coding": "not a list", "text": "VCF"}
    parsed = parse_hook_body(orjson.dumps(body))
    assert isinstance(parsed["prefetch"]["conditions"], msgspec.Raw)
    read = read_document(parsed["prefetch"]["conditions"])
    assert read is not None and read.resources()[0].code is not None
    assert read.resources()[0].code.text == "VCF"  # the malformed coding dropped, not the concept


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ],
)
def test_hook_bodies_that_are_not_json_are_refused_as_any_body(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_hook_body(raw)
