"""Checks of CDS Hooks 2.0 rules shared by the protocol and card tests."""

from __future__ import annotations

from typing import Any


def assert_no_empty(value: Any, path: str = "") -> None:
    """Spec: optional fields are never null, "", [] or {} (``cards: []`` excepted)."""
    assert value is not None, path
    if isinstance(value, dict):
        assert value or not path, path
        for key, child in value.items():
            assert_no_empty(child, f"{path}.{key}")
    elif isinstance(value, list):
        assert value or path == ".cards", path
        for i, child in enumerate(value):
            assert_no_empty(child, f"{path}[{i}]")
    elif isinstance(value, str):
        assert value, path
