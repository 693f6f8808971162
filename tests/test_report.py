"""The daily report (日报告 / 零报告) on a real SQLite store, against a report counted by hand."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fixtures.collector_data import HERE, at, insert, load_day, make_entry, open_sqlite
from pg import fresh_database

from checkpoint.entry import Alert, Status, utc_now
from office.cli import query as query_cli
from office.reports.daily import DailyReport, build_report, daily_report, day_bounds, report_refusal, zone
from office.reports.render import CSV_COLUMNS, render
from office.store.base import Store, StoredAlert
from office.store.opening import open_store

DAY = date(2026, 3, 19)
NOW = at("2026-03-20T01:00:00.000Z")
TZ = "Asia/Shanghai"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_sqlite(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def day_store(store: Store) -> Store:
    load_day(store)
    return store


def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "day_expected.json").read_text(encoding="utf-8"))
    return data


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_day_report_matches_the_hand_count(day_store: Store) -> None:
    report = daily_report(day_store, DAY, site=None, tz=TZ, now=NOW)
    assert report.to_json() == expected()


def test_site_report_holds_only_that_site(day_store: Store) -> None:
    report = daily_report(day_store, DAY, site="s2", tz=zone(TZ), now=NOW)
    data = report.to_json()
    s2 = expected()["sites"][1]
    assert data["site"] == "s2"
    assert data["sites"] == [s2]
    assert data["totals"] == s2["totals"]
    assert not report.zero


def test_a_filled_gap_leaves_the_report(day_store: Store) -> None:
    insert(day_store, [make_entry("s1", "gate-north", 6, "2026-03-19T01:30:00.000Z")])
    report = daily_report(day_store, DAY, site="s1", tz=TZ, now=NOW)
    north = report.sites[0].kiosks[0]
    assert north.kiosk == "gate-north"
    assert north.gaps == () and north.missing == 0
    assert north.counts.entries == 10
    assert report.sites[0].entries_per_hour[9] == 4


def test_zero_report_lists_every_known_kiosk(day_store: Store) -> None:
    later = date(2026, 3, 25)
    report = daily_report(day_store, later, site=None, tz=TZ, now=at("2026-03-26T00:00:00.000Z"))
    assert report.zero
    assert [(s.site, [k.kiosk for k in s.kiosks]) for s in report.sites] == [
        ("s1", ["gate-north", "gate-south"]), ("s2", ["gate-east", "gate-west"])]
    for site in report.sites:
        assert site.zero and site.totals.entries == 0 and sum(site.entries_per_hour) == 0
        for kiosk in site.kiosks:
            assert kiosk.counts.entries == kiosk.counts.allows == kiosk.counts.unique_persons == 0
            assert dict(kiosk.counts.overrides) == {"staff": 0, "remote": 0}
    west = report.sites[1].kiosks[1]
    assert [(p.seconds, p.ongoing) for p in west.offline] == [(86_400, True)]  # still offline all day
    assert [(g.first, g.last) for g in report.sites[1].kiosks[0].gaps] == [(8, 9)]  # open gaps stay
    assert "零报告" in render(report, "text").decode("utf-8")


def test_todays_report_clips_an_ongoing_outage_at_now(day_store: Store) -> None:
    report = daily_report(day_store, DAY, site="s2", tz=TZ, now=at("2026-03-19T15:00:00.000Z"))
    west = report.sites[0].kiosks[1]
    assert west.kiosk == "gate-west"
    assert [(p.seconds, p.ongoing) for p in west.offline] == [(3600, True)]


def test_zero_report_for_a_site_without_kiosks(store: Store) -> None:
    report = daily_report(store, DAY, site="s9", tz=TZ, now=NOW)
    assert report.zero
    assert [(s.site, s.kiosks, s.totals.entries) for s in report.sites] == [("s9", (), 0)]
    text = render(report, "text").decode("utf-8")
    assert "零报告" in text and "s9" in text
    rows = list(csv.reader(io.StringIO(render(report, "csv").decode("utf-8"))))
    assert rows[1][:4] == ["2026-03-19", "s9", "*", "0"]
    assert len(rows) == 2


def test_zero_report_with_no_sites_at_all(store: Store) -> None:
    report = daily_report(store, DAY, site=None, tz=TZ, now=NOW)
    assert report.zero and report.sites == () and report.totals.entries == 0
    assert "零报告" in render(report, "text").decode("utf-8")
    assert png_size(render(report, "png")) == (1000, 400)


def test_day_bounds_follow_the_local_zone() -> None:
    start, end = day_bounds(DAY, zone(TZ))
    assert (start, end) == (at("2026-03-18T16:00:00.000Z"), at("2026-03-19T16:00:00.000Z"))
    start, end = day_bounds(date(2026, 3, 29), zone("Europe/Berlin"))  # summer time starts: 23 hours
    assert end - start == at("2026-03-29T23:00:00.000Z") - at("2026-03-29T00:00:00.000Z")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")


# -- rendering -----------------------------------------------------------------------------------------


@pytest.fixture
def report(day_store: Store) -> DailyReport:
    return daily_report(day_store, DAY, site=None, tz=TZ, now=NOW)


def test_text_is_a_bilingual_daily_report(report: DailyReport) -> None:
    text = render(report, "text").decode("utf-8")
    assert text.startswith("日报告 Daily report · 2026-03-19 (Asia/Shanghai)")
    assert "零报告" not in text.splitlines()[0]
    assert "出入 entries 17" in text and "出入 entries 7" in text
    assert "离线 offline 12:00–13:30 (1 h 30 min)" in text  # gate-south, local time
    assert "离线 offline 22:00–24:00 (2 h 0 min) 仍离线 still offline" in text  # gate-west
    assert "缺失 missing seq 8–9 (2 条 entries not received)" in text
    assert "拒绝原因 deny reasons: 健康码红码 health_code_red 1" in text
    assert "按保留期限清除 Purged by retention: 3" in text


def test_csv_has_the_documented_columns_and_a_total_row_per_site(report: DailyReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["site"], r["kiosk"]) for r in rows] == [
        ("s1", "gate-north"), ("s1", "gate-south"), ("s1", "*"),
        ("s2", "gate-east"), ("s2", "gate-west"), ("s2", "*")]
    north, south, s1, east, west, s2 = rows
    assert (north["entries"], north["deny_pass_expired"], north["missing"], north["first_seen_passes"]) == (
        "9", "1", "1", "3")
    assert (south["offline_s"], south["overrides_remote"], south["visitors"]) == ("5400", "1", "2")
    assert (s1["entries"], s1["unique_persons"], s1["deny_no_health_code"], s1["offline_s"]) == (
        "17", "3", "2", "5400")
    assert (west["entries"], west["offline_s"]) == ("0", "7200")
    assert (s2["fevers"], s2["missing"], s2["offline_s"]) == ("1", "2", "10800")
    assert east["deny_quota_exceeded"] == "1"
    assert {r["date"] for r in rows} == {"2026-03-19"}


def test_json_round_trips(report: DailyReport) -> None:
    data = render(report, "json")
    assert json.loads(data.decode("utf-8")) == report.to_json() == expected()


def test_png_is_a_chart_per_site(report: DailyReport, day_store: Store) -> None:
    assert png_size(render(report, "png")) == (1000, 800)
    one = daily_report(day_store, DAY, site="s1", tz=TZ, now=NOW)
    assert png_size(render(one, "png")) == (1000, 400)


def test_unknown_format_is_refused(report: DailyReport) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "pdf")  # type: ignore[arg-type]


def test_matplotlib_loads_only_for_png() -> None:
    code = ("import sys, office.reports.daily, office.reports.render, office.cli.query;"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"


# -- the command ---------------------------------------------------------------------------------------


def test_report_command_writes_each_format(day_store: Store, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:{tmp_path / 'office.sqlite'}"
    out = tmp_path / "r.csv"
    assert query_cli.main(["report", "--date", "2026-03-19", "--site", "s1", "--format", "csv",
                            "--out", str(out), "--store", db]) == 0
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(CSV_COLUMNS)
    assert query_cli.main(["report", "--date", "2026-03-19", "--store", db]) == 0
    assert capsys.readouterr().out.startswith("日报告 Daily report · 2026-03-19")
    png = tmp_path / "r.png"
    assert query_cli.main(["report", "--date", "2026-03-19", "--format", "png", "--out", str(png),
                            "--store", db]) == 0
    assert png_size(png.read_bytes()) == (1000, 800)


def test_report_command_reads_the_config(day_store: Store, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "office.toml"
    config.write_text('[store]\nkind = "sqlite"\npath = "office.sqlite"\n'
                      '[report]\ntimezone = "UTC"\n', encoding="utf-8")
    argv = ["report", "--date", "2026-03-19", "--format", "json", "--config", str(config)]
    assert query_cli.main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["timezone"] == "UTC" and data["from"] == "2026-03-19T00:00:00.000Z"


@pytest.mark.parametrize("argv", [
    ["report", "--date", "19.03.2026", "--store", "sqlite:x"],
    ["report", "--date", "2026-03-19", "--store", "mysql:x"],
    ["report", "--date", "2026-03-19", "--store", "sqlite:/nonexistent/office.sqlite"],
    ["report", "--date", "2026-03-19", "--config", "/nonexistent/office.toml"],
    ["report", "--date", "2026-03-19", "--store", "sqlite:x", "--tz", "Mars/Olympus"],
    ["report", "--date", "2026-03-19", "--store", "sqlite:x", "--format", "pdf"],
])
def test_report_command_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert query_cli.main(argv) == 2
    assert "kiosk-office" in capsys.readouterr().err


def test_status_only_kiosk_is_known(store: Store) -> None:
    store.record_status("s3", "gate-a", Status(state="online", ts=at("2026-03-19T01:00:00.000Z")),
                        at("2026-03-19T01:00:00.000Z"))
    report = daily_report(store, DAY, site=None, tz=TZ, now=NOW)
    assert [(s.site, [k.kiosk for k in s.kiosks]) for s in report.sites] == [("s3", ["gate-a"])]
    assert report.zero


# -- a report only for a day that has begun, at a site that has reported -------------------------------


def run_report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = query_cli.main(["report", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_report_command_refuses_a_site_no_kiosk_ever_reported_from(
        day_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_report(capsys, "--date", "2026-03-19", "--site", "s9",
                                  "--store", f"sqlite:{tmp_path / 'office.sqlite'}")
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and "s9" in err and "ever reported" in err


@pytest.mark.parametrize("days_ahead", [1, 365 * 900])
def test_report_command_refuses_a_day_in_the_future(
        day_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], days_ahead: int) -> None:
    day = utc_now().astimezone(zone(TZ)).date() + timedelta(days=days_ahead)
    status, out, err = run_report(capsys, "--date", day.isoformat(), "--site", "s1",
                                  "--store", f"sqlite:{tmp_path / 'office.sqlite'}")
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and day.isoformat() in err and "future" in err


def test_report_command_still_makes_the_zero_report_of_a_quiet_day(
        day_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:{tmp_path / 'office.sqlite'}"
    status, out, err = run_report(capsys, "--date", "2026-03-25", "--site", "s1", "--store", db)
    assert (status, err) == (0, "") and "零报告" in out
    assert run_report(capsys, "--date", "today", "--site", "s2", "--store", db)[0] == 0


@pytest.mark.parametrize("how", ["status", "alert"])
def test_a_site_known_by_a_status_or_an_alert_alone_gets_its_zero_report(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    when = at("2026-03-19T01:00:00.000Z")
    if how == "status":
        store.record_status("s5", "gate-a", Status(state="online", ts=when), when)
    else:
        store.insert_alerts([StoredAlert("s5", "gate-a", Alert(kind="fault", ts=when, detail="cam"), when)])
    status, out, err = run_report(capsys, "--date", "2026-03-19", "--site", "s5",
                                  "--store", f"sqlite:{tmp_path / 'office.sqlite'}")
    assert (status, err) == (0, "") and "零报告" in out and "s5" in out


def test_the_future_is_judged_in_the_reports_time_zone(day_store: Store) -> None:
    now = at("2026-03-19T17:00:00.000Z")  # 01:00 on the 20th in Shanghai, 13:00 on the 19th in New York
    assert report_refusal(day_store, date(2026, 3, 20), site="s1", tz=TZ, now=now) is None
    refused = report_refusal(day_store, date(2026, 3, 20), site="s1", tz="America/New_York", now=now)
    assert refused is not None and "2026-03-20" in refused
    assert report_refusal(day_store, date(2026, 3, 19), site=None, tz="America/New_York", now=now) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_site_reported_counts_entries_statuses_and_alerts(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            opened = stack.enter_context(open_store("sqlite", path=tmp_path / "office.sqlite"))
        else:
            dsn = stack.enter_context(fresh_database(request.getfixturevalue("postgres_dsn")))
            opened = stack.enter_context(open_store("postgres", dsn=dsn))
        when = at("2026-03-19T01:00:00.000Z")
        assert not any(opened.site_reported(s) for s in ("s1", "s2", "s3", "s4"))
        insert(opened, [make_entry("s1", "gate-a", 1, "2026-03-19T01:00:00.000Z")])
        opened.record_status("s2", "gate-a", Status(state="online", ts=when), when)
        opened.insert_alerts([StoredAlert("s3", "gate-a", Alert(kind="fault", ts=when, detail="x"), when)])
        opened.purge(at("2026-03-20T00:00:00.000Z"), now=at("2026-03-20T00:00:00.000Z"))
        assert [opened.site_reported(s) for s in ("s1", "s2", "s3", "s4")] == [True, True, True, False]


def test_travel_card_checks_and_risks_are_counted() -> None:
    """Issue 15: entries whose code carried a travel card, and `travel_risk`, in the counts, text and CSV."""
    plain = make_entry("s1", "gate-north", 1, "2026-03-19T01:00:00.000Z")
    with_travel = [
        make_entry("s1", "gate-north", seq, "2026-03-19T01:05:00.000Z", decision=decision, reasons=reasons)
        for seq, decision, reasons in ((2, "allow", ()), (3, "attention", ("travel_risk",)),
                                       (4, "deny", ("travel_risk",)),
                                       (5, "deny", ("health_code_not_holder",)))
    ]
    cards = [("green", False), ("green", True), ("red", False), ("green", False)]
    with_travel = [e.model_copy(update={"health": e.health.model_copy(update={"travel": t, "star": s})})
                   for e, (t, s) in zip(with_travel, cards, strict=True) if e.health is not None]
    v1_no_card = make_entry("s1", "gate-north", 6, "2026-03-19T01:10:00.000Z", decision="deny",
                            reasons=("no_travel_code",))
    report = build_report(DAY, zone(TZ), [plain, *with_travel, v1_no_card], site=None, known_kiosks=(),
                          first_seen={}, offline=(), gaps=(), purged=0, now=NOW)
    counts = report.sites[0].kiosks[0].counts
    assert (counts.travel_checks, counts.travel_risks) == (4, 2)
    assert counts.denies_by_reason == {"health_code_not_holder": 1, "no_travel_code": 1, "travel_risk": 1}
    assert report.totals.to_json()["travel_checks"] == 4
    text = render(report, "text").decode("utf-8")
    assert "行程卡 travel cards checked 4 · 行程卡异常 travel_risk 2" in text
    assert "健康码非本人 health_code_not_holder 1" in text and "未出示行程卡 no_travel_code 1" in text
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode("utf-8"))))
    assert (rows[0]["travel_checks"], rows[0]["travel_risks"], rows[0]["deny_travel_risk"]) == ("4", "2", "1")
    assert rows[0]["deny_health_code_not_holder"] == "1"
