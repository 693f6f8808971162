"""Traces and close contacts on a real SQLite store: selectors, windows, audit log, CSV, no raw ID numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fixtures.collector_data import at, insert, make_entry, open_sqlite

from checkpoint import idnumber
from checkpoint.entry import Entry
from office.cli import query as query_cli
from office.store.base import Store
from office.trace import CSV_COLUMNS, EntryNotFound, TraceError, close_contacts, trace, trace_csv

VALID = "11010519491231002X"  # the GB 11643 standard's own example
KEYS = {"s1": b"site one key, 32 bytes or longer.", "s2": b"site two key, 32 bytes or longer."}
REF1 = idnumber.parse(VALID).person_ref(KEYS["s1"])
REF2 = idnumber.parse(VALID).person_ref(KEYS["s2"])
START, END = at("2026-03-19T00:00:00.000Z"), at("2026-03-20T00:00:00.000Z")
NOW = at("2026-03-21T09:00:00.000Z")
T = at("2026-03-19T08:00:00.000Z")
M = timedelta(minutes=5)
MS = timedelta(milliseconds=1)
P001 = ("P-001", "green", "9-1-101")


def with_ref(entry: Entry, ref: str) -> Entry:
    person = {"ref": ref, "masked": idnumber.mask(VALID)}
    return Entry.model_validate({**entry.model_dump(by_alias=True), "person": person})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_sqlite(tmp_path / "office.sqlite") as opened:
        entries = [
            with_ref(make_entry("s1", "gate-north", 1, "2026-03-19T00:00:00.000Z"), REF1),
            make_entry("s1", "gate-north", 2, "2026-03-19T01:05:00.000Z", pass_=P001),
            make_entry("s1", "gate-north", 3, "2026-03-19T01:10:00.000Z", pass_=("P-002", "blue", "9-1-101"),
                       decision="deny", reasons=("no_health_code", "pass_expired"), health=None),
            with_ref(make_entry("s1", "gate-south", 1, "2026-03-19T01:05:00.000Z", override="staff"), REF1),
            with_ref(make_entry("s2", "gate-north", 1, "2026-03-19T02:00:00.000Z", body_c=37.9,
                                decision="attention", reasons=("fever",)), REF2),
            with_ref(make_entry("s1", "gate-north", 4, "2026-03-20T00:00:00.000Z"), REF1),  # at END: out
            make_entry("s1", "gate-north", 5, "2026-03-20T00:00:01.000Z", pass_=P001),
            # close contacts around T at s1/gate-east
            make_entry("s1", "gate-east", 1, T - M - MS, pass_=("P-010", "green", None)),
            make_entry("s1", "gate-east", 2, T - M, pass_=("P-011", "green", None)),
            make_entry("s1", "gate-east", 3, T, pass_=("P-012", "red", "7-1-101")),
            make_entry("s1", "gate-east", 4, T + M, pass_=("P-013", "pink", None)),
            make_entry("s1", "gate-east", 5, T + M + MS, pass_=("P-014", "green", None)),
            make_entry("s1", "gate-west", 1, T + timedelta(minutes=1), pass_=("P-015", "green", None)),
            make_entry("s2", "gate-east", 1, T, pass_=("P-016", "green", None)),
        ]
        for kiosk in sorted({(e.site, e.kiosk) for e in entries}):
            insert(opened, [e for e in entries if (e.site, e.kiosk) == kiosk])
        yield opened


def keys(entries: list[Entry]) -> list[tuple[str, str, int]]:
    return [(e.site, e.kiosk, e.seq) for e in entries]


def test_trace_by_person_ref(store: Store) -> None:
    found = trace(store, start=START, end=END, person_ref=REF1.upper(), who="anna", now=NOW)
    assert keys(found) == [("s1", "gate-north", 1), ("s1", "gate-south", 1)]  # start is inclusive


def test_trace_by_id_number_hashes_with_each_site_key(store: Store) -> None:
    found = trace(store, start=START, end=END, id_number=VALID, who="anna", site_keys=KEYS, now=NOW)
    assert keys(found) == [("s1", "gate-north", 1), ("s1", "gate-south", 1), ("s2", "gate-north", 1)]
    only_s2 = trace(store, start=START, end=END, id_number=VALID, site="s2", who="anna", site_keys=KEYS,
                    now=NOW)
    assert keys(only_s2) == [("s2", "gate-north", 1)]
    log = store.trace_log()
    assert [json.loads(q)["person_refs"] for _at, _who, q in log] == [{"s1": REF1, "s2": REF2}, {"s2": REF2}]
    assert all(VALID not in query and VALID[:17] not in query for _at, _who, query in log)
    text = trace_csv(found)
    assert VALID not in text and idnumber.mask(VALID) in text


def test_trace_by_pass_household_and_kiosk(store: Store) -> None:
    assert keys(trace(store, start=START, end=END, pid="P-001", who="anna")) == [("s1", "gate-north", 2)]
    assert keys(trace(store, start=START, end=END, household="9-1-101", who="anna")) == [
        ("s1", "gate-north", 2), ("s1", "gate-north", 3)]
    assert keys(trace(store, start=START, end=END, kiosk="gate-north", who="anna")) == [
        ("s1", "gate-north", 1), ("s1", "gate-north", 2), ("s1", "gate-north", 3), ("s2", "gate-north", 1)]
    assert keys(trace(store, start=START, end=END, kiosk="gate-north", site="s2", who="anna")) == [
        ("s2", "gate-north", 1)]
    wider = trace(store, start=START, end=END + timedelta(seconds=2), pid="P-001", who="anna")
    assert keys(wider) == [("s1", "gate-north", 2), ("s1", "gate-north", 5)]


def test_every_query_is_audited_with_who_and_when(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "office-li")
    trace(store, start=START, end=END, household="9-1-101", now=NOW)
    trace(store, start=START, end=END, pid="P-001", who="anna", now=NOW + timedelta(minutes=1))
    close_contacts(store, ("s1", "gate-east", T), minutes=5, who="wang", now=NOW + timedelta(minutes=2))
    log = store.trace_log()
    assert [(when, who) for when, who, _q in log] == [
        (NOW, "office-li"), (NOW + timedelta(minutes=1), "anna"), (NOW + timedelta(minutes=2), "wang")]
    assert json.loads(log[0][2]) == {"by": "household", "value": "9-1-101", "site": None,
                                     "from": "2026-03-19T00:00:00.000Z", "to": "2026-03-20T00:00:00.000Z"}
    assert json.loads(log[2][2]) == {"by": "contacts", "minutes": 5, "site": "s1", "kiosk": "gate-east",
                                     "at": "2026-03-19T08:00:00.000Z"}


@pytest.mark.parametrize("kwargs", [
    {},
    {"pid": "P-001", "household": "9-1-101"},
    {"pid": "P 001"},
    {"person_ref": "abc"},
    {"kiosk": "gate/north"},
    {"pid": "P-001", "site": "s 1"},
])
def test_bad_queries_are_refused_and_not_run(store: Store, kwargs: dict[str, str]) -> None:
    with pytest.raises(TraceError):
        trace(store, start=START, end=END, who="anna", **kwargs)  # type: ignore[arg-type]
    assert store.trace_log() == []


def test_an_id_number_never_reaches_the_log_or_the_error(store: Store) -> None:
    wrong = VALID[:-1] + "1"
    with pytest.raises(TraceError) as bad:
        trace(store, start=START, end=END, id_number=wrong, who="anna", site_keys=KEYS)
    assert "check digit" in str(bad.value) and wrong not in str(bad.value)
    with pytest.raises(TraceError, match="looks like an ID number") as given_as_pass:
        trace(store, start=START, end=END, pid=VALID, who="anna")
    assert VALID not in str(given_as_pass.value)
    with pytest.raises(TraceError, match="no HMAC key for site s3"):
        trace(store, start=START, end=END, id_number=VALID, site="s3", who="anna", site_keys=KEYS)
    assert store.trace_log() == []


def test_window_must_be_aware_and_forward(store: Store) -> None:
    with pytest.raises(TraceError, match="ends before it starts"):
        trace(store, start=END, end=START, pid="P-001", who="anna")
    with pytest.raises(TraceError, match="time zone"):
        trace(store, start=START.replace(tzinfo=None), end=END, pid="P-001", who="anna")


def test_csv_export_has_the_fixed_columns(store: Store) -> None:
    found = trace(store, start=START, end=END, kiosk="gate-north", site="s1", who="anna")
    text = trace_csv(found)
    assert text.startswith("\ufeffts,")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert tuple(rows[0]) == CSV_COLUMNS == (
        "ts", "site", "kiosk", "seq", "direction", "decision", "reasons", "override", "pid", "cat", "hh",
        "person_ref", "person_masked", "body_c", "id")
    assert rows[1] == ["2026-03-19T00:00:00.000+00:00", "s1", "gate-north", "1", "in", "allow", "", "", "",
                       "", "", REF1, "1101**************", "36.5", found[0].id]
    assert rows[3] == ["2026-03-19T01:10:00.000+00:00", "s1", "gate-north", "3", "in", "deny",
                       "no_health_code;pass_expired", "", "P-002", "blue", "9-1-101", "", "", "36.5",
                       found[2].id]
    assert len(rows) == 4


def test_csv_export_is_local_in_the_given_zone(store: Store) -> None:
    found = trace(store, start=START, end=END, kiosk="gate-north", site="s1", who="anna")
    text = trace_csv(found, ZoneInfo("Asia/Shanghai"))
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbfts,")
    assert [row[0] for row in rows[1:]] == ["2026-03-19T08:00:00.000+08:00", "2026-03-19T09:05:00.000+08:00",
                                            "2026-03-19T09:10:00.000+08:00"]


def test_close_contacts_by_entry_id_include_both_boundaries(store: Store) -> None:
    index = trace(store, start=T, end=T + MS, kiosk="gate-east", site="s1", who="anna")[0]
    found = close_contacts(store, index.id, minutes=5, who="anna")
    assert [e.pass_.pid for e in found if e.pass_] == ["P-011", "P-013"]  # ±5 min inclusive, index left out
    log = json.loads(store.trace_log()[-1][2])
    assert log == {"by": "contacts", "entry_id": index.id, "minutes": 5}


def test_close_contacts_around_a_time_list_everyone_there(store: Store) -> None:
    found = close_contacts(store, ("s1", "gate-east", T), minutes=5, who="anna")
    assert [e.pass_.pid for e in found if e.pass_] == ["P-011", "P-012", "P-013"]
    wider = close_contacts(store, ("s1", "gate-east", T), minutes=5 + 1 / 60_000, who="anna")
    assert [e.pass_.pid for e in wider if e.pass_] == ["P-010", "P-011", "P-012", "P-013", "P-014"]


def test_close_contacts_refuse_bad_input(store: Store) -> None:
    with pytest.raises(EntryNotFound):
        close_contacts(store, "01900000-0000-7000-8000-000000000000", minutes=5, who="anna")
    with pytest.raises(TraceError, match="UUIDv7"):
        close_contacts(store, "not-an-id", minutes=5, who="anna")
    for minutes in (0, -1, 24 * 60 + 1):
        with pytest.raises(TraceError, match="minutes"):
            close_contacts(store, ("s1", "gate-east", T), minutes=minutes, who="anna")


# -- the command ---------------------------------------------------------------------------------------


@pytest.fixture
def db(store: Store, tmp_path: Path) -> str:
    return f"sqlite:{tmp_path / 'office.sqlite'}"


def test_trace_command_id_number_from_stdin(db: str, store: Store, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    key1, key2 = tmp_path / "s1.key", tmp_path / "s2.key"
    for path, site in ((key1, "s1"), (key2, "s2")):
        path.write_bytes(KEYS[site])
        path.chmod(0o600)
    monkeypatch.setattr("sys.stdin", io.StringIO(VALID + "\n"))
    assert query_cli.main(["trace", "--id-number", "-", "--from", "2026-03-19", "--to", "2026-03-20",
                            "--tz", "UTC", "--csv", "--who", "anna", "--site-key", f"s1={key1}",
                            "--site-key", f"s2={key2}", "--store", db]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out.removeprefix("\ufeff"))))
    assert [row[:4] for row in rows[1:]] == [["2026-03-19T00:00:00.000+00:00", "s1", "gate-north", "1"],
                                             ["2026-03-19T01:05:00.000+00:00", "s1", "gate-south", "1"],
                                             ["2026-03-19T02:00:00.000+00:00", "s2", "gate-north", "1"]]
    assert "3 entries" in err and VALID not in out + err
    assert [(who, VALID in q) for _at, who, q in store.trace_log()] == [("anna", False)]


def test_trace_command_text_and_contacts(db: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert query_cli.main(["trace", "--household", "9-1-101", "--from", "2026-03-19T08:00+08:00",
                            "--to", "2026-03-20", "--store", db, "--who", "anna"]) == 0
    out = capsys.readouterr().out.splitlines()
    ids = [e.id for e in store.entries_between(START, END, hh="9-1-101")][-2:]
    assert out == [f"2026-03-19 09:05:00 s1/gate-north #2 in allow 36.5°C P-001 green hh 9-1-101 id {ids[0]}",
                   "2026-03-19 09:10:00 s1/gate-north #3 in deny [no_health_code,pass_expired] 36.5°C "
                   f"P-002 blue hh 9-1-101 id {ids[1]}"]  # the id is what --contacts takes
    assert query_cli.main(["trace", "--kiosk", "gate-east", "--site", "s1", "--at", "2026-03-19T16:00",
                            "--minutes", "5", "--csv", "--store", db, "--who", "anna"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("\ufeffts,")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [r["pid"] for r in rows] == ["P-011", "P-012", "P-013"]
    assert rows[0]["ts"].endswith("+08:00")  # the default --tz without a config: Asia/Shanghai


@pytest.mark.parametrize(("argv", "status"), [
    (["trace", "--pass", "P-001", "--household", "9-1-101", "--from", "2026-03-19", "--to", "2026-03-20"], 2),
    (["trace", "--pass", "P-001", "--from", "2026-03-19"], 2),
    (["trace", "--pass", "P-001", "--from", "19/03/2026", "--to", "2026-03-20"], 2),
    (["trace", "--contacts", "01900000-0000-7000-8000-000000000000"], 2),
    (["trace", "--contacts", "01900000-0000-7000-8000-000000000000", "--minutes", "5"], 1),
    (["trace", "--kiosk", "gate-east", "--at", "2026-03-19T16:00", "--minutes", "5"], 2),
    (["trace", "--id-number", VALID, "--from", "2026-03-19", "--to", "2026-03-20"], 2),
])
def test_trace_command_errors(db: str, argv: list[str], status: int,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert query_cli.main([*argv, "--store", db, "--who", "anna"]) == status
    err = capsys.readouterr().err
    assert err and VALID not in err
