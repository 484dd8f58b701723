"""cds-service report: rates per variant, card kind and procedure; repeats counted once; unknown cards apart."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from cds_service import cli
from cds_service.feedback_store import open_store
from cds_service.report import build_report, render_csv, render_json, render_table
from tests.cds_service.test_feedback_store import T0, card, feedback


@pytest.fixture
def filled(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    store = open_store(url)
    store.record_issued(
        [
            card("a", variant=2, kind="lower-rated"),
            card("b", variant=2, kind="lower-rated"),
            card("c", variant=9, kind="consults"),
            card("d", variant=None, kind="ambiguous"),
            card("old", variant=1, at=T0 - timedelta(days=60)),
        ]
    )
    store.record_feedback(
        "svc",
        [
            feedback("a", "overridden"),
            feedback("a", "accepted", at=T0 + timedelta(minutes=5)),  # the clinician changed their mind
            feedback("b", "overridden"),
            feedback("c", "accepted"),
            feedback("never-issued", "overridden"),
        ],
    )
    store.close()
    return url


def test_rates_count_each_card_once_by_its_latest_outcome(filled: str) -> None:
    store = open_store(filled)
    report = build_report(store)
    store.close()
    assert (report.issued, report.feedback_entries, report.repeated_feedback, report.unknown_card_feedback) == (
        5,
        5,
        1,
        1,
    )
    v2 = report.by_variant["variant 2"]
    assert (v2.issued, v2.answered, v2.accepted, v2.overridden) == (2, 2, 1, 1)
    assert v2.acceptance_rate == 0.5
    assert report.by_variant["variant 9"].acceptance_rate == 1.0
    assert report.by_variant["no single variant"].answered == 0
    assert report.by_card_kind["consults"].accepted == 1
    assert report.overall.answered == 3
    assert report.override_reasons == {"Judgement": 1}  # b only: a's latest answer is acceptance
    (procedure,) = report.by_procedure
    assert procedure == "Bone scan whole body (78306)"


def test_since(filled: str) -> None:
    store = open_store(filled)
    report = build_report(store, T0 - timedelta(days=1))
    store.close()
    assert report.issued == 4 and "variant 1" not in report.by_variant


def test_renderings(filled: str) -> None:
    store = open_store(filled)
    report = build_report(store)
    store.close()
    table = render_table(report)
    assert "variant 2" in table and "50%" in table and "█" in table and "Judgement" in table
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    (v2,) = [r for r in rows if r["section"] == "variant" and r["key"] == "variant 2"]
    assert (v2["issued"], v2["acceptance_rate"], v2["override_rate"]) == ("2", "0.5000", "0.5000")
    body = json.loads(render_json(report))
    assert body["byVariant"]["variant 2"]["acceptanceRate"] == 0.5 and body["unknownCardFeedback"] == 1


def test_report_command(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--database-url", filled, "--format", "json", "--since", "2026-11-19"]) == 0
    assert json.loads(capsys.readouterr().out)["issued"] == 4
    assert cli.main(["report", "--database-url", "mysql://nope"]) == 2
    assert "cannot open the store" in capsys.readouterr().err


def test_report_on_postgresql(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(postgres_url)
    store.record_issued([card("a", variant=6)])
    store.record_feedback("svc", [feedback("a", "accepted")])
    store.close()
    assert cli.main(["report", "--database-url", postgres_url, "--format", "csv"]) == 0
    assert "variant 6" in capsys.readouterr().out
