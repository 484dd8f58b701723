"""The benchmark command runs (issue 7: "The benchmark command runs from the README, prints the table");
figures are printed, never asserted here."""

from __future__ import annotations

from benchmarks.run import bench_engine


def test_the_engine_section_prints_a_row_per_record_size_and_the_growth() -> None:
    lines = bench_engine(quick=True)
    rows = [line for line in lines if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["10", "100", "2000"]
    assert all(len(row.split("|")) == 8 for row in rows)
    assert any(line.startswith("Growth for a new patient") for line in lines)
