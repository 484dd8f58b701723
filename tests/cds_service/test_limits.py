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

from cds_service.errors import BadRequest
from cds_service.limits import ShapeLimits, check_shape, parse_hook_body

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


def plain(body: Any) -> Any:
    """A ``parse_hook_body`` result with its undecoded prefetch values decoded, for comparison."""
    if isinstance(body, dict) and isinstance(body.get("prefetch"), dict):
        prefetch = {k: v if v is None else msgspec.json.decode(v) for k, v in body["prefetch"].items()}
        return {**body, "prefetch": prefetch}
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.dictionaries(st.sampled_from(["hook", "context", "prefetch", "x"]), JSON, max_size=4)
    | st.fixed_dictionaries({"prefetch": st.dictionaries(TRICKY, JSON, max_size=4)})
    | JSON,
    encoding=st.sampled_from(ENCODINGS),
)
def test_hook_bodies_parse_to_the_same_json_with_prefetch_left_to_decode(body: Any, encoding: Any) -> None:
    raw = encoding(body)
    parsed = parse_hook_body(raw)
    assert plain(parsed) == orjson.loads(raw)
    prefetch = parsed.get("prefetch") if isinstance(parsed, dict) else None
    if isinstance(prefetch, dict):
        assert all(v is None or isinstance(v, msgspec.Raw) for v in prefetch.values())


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
