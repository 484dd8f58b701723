"""The README stays true to the code: every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

from cds_service.cli import build_parser
from cds_service.settings import Settings

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"CDS_{name.upper()}" for name in Settings.model_fields if f"CDS_{name.upper()}" not in README]
    assert missing == []


def test_every_command_is_in_the_readme() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert [name for name in commands if f"cds-service {name}" not in README] == []


def test_docs_the_readme_names_exist() -> None:
    for path in (
        "docs/sandbox.md",
        "docs/clinical-logic.md",
        "docs/code-systems.md",
        "docs/sandbox-jwks.json",
        "benchmarks/RESULTS.md",
        ".ci/run",
    ):
        assert (ROOT / path).is_file(), path
