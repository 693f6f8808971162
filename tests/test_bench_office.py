"""bench/office.py on a small store, so that the benchmark keeps running: every page answers, every SSE
event arrives."""

from __future__ import annotations

import re

import pytest

from bench import office


def test_the_office_benchmark_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert office.main(["--entries", "400", "--kiosks", "4", "--streams", "3", "--alerts", "2",
                        "--requests", "2", "--no-pg"]) == 0
    out = capsys.readouterr().out
    assert "SQLite: 400 entries from 4 kiosks" in out
    rows = re.findall(r"^\| (overview|entries, filtered|report, today \(live\)|trace, household, 14 days) \|",
                      out, re.MULTILINE)
    assert len(rows) == 4 and "report, today, read anew" in out
    assert "(6 of 6 events arrived)" in out
