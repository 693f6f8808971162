"""The issued-pass registry: strict import of kiosk-admin's passes.csv, unknown passes, absent households."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fixtures.collector_data import at, insert, make_entry, open_sqlite

from checkpoint.entry import utc_now
from office.admin.passes import REGISTRY_COLUMNS, make_pass, write_passes
from office.cli import query as query_cli
from office.registry import (
    AbsentHousehold,
    RegistryError,
    absent_households,
    import_registry,
    parse_registry_csv,
    unknown_passes,
)
from office.store.base import IssuedPass, Store

OFFICE = Ed25519PrivateKey.generate()
IDH = "ab" * 32
KID = "0123456789abcdef"
HEADER = ",".join(REGISTRY_COLUMNS)
GOOD = f"P-001,green,9-1-101,张**,{IDH},1773878400,1776470400,{KID}"
VALID_ID = "11010519491231002X"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_sqlite(tmp_path / "office.sqlite") as opened:
        yield opened


def issued(pid: str, hh: str | None, nbf: datetime, exp: datetime, cat: str = "green") -> IssuedPass:
    return IssuedPass(pid, cat, hh, "李*", IDH, int(nbf.timestamp()), int(exp.timestamp()), KID)


def test_imports_the_csv_that_kiosk_admin_writes(store: Store, tmp_path: Path) -> None:
    nbf, exp = 1773878400, 1776470400
    passes = [make_pass(OFFICE, None, pid=pid, cat=cat, hh=hh, name="张三丰", idh=IDH, nbf=nbf, exp=exp)
              for pid, cat, hh in (("P-001", "green", "9-1-101"), ("P-002", "pink", None),
                                   ("P-003", "red", "9-1-102"))]
    write_passes(passes, tmp_path / "out")
    assert import_registry(store, tmp_path / "out" / "passes.csv") == 3
    held = store.registry()
    assert [(p.pid, p.cat, p.hh, p.name_masked, p.nbf, p.exp, p.kid) for p in held] == [
        ("P-001", "green", "9-1-101", "张**", nbf, exp, passes[0].kid),
        ("P-002", "pink", None, "张**", nbf, exp, passes[0].kid),
        ("P-003", "red", "9-1-102", "张**", nbf, exp, passes[0].kid)]
    renewed = make_pass(OFFICE, None, pid="P-002", cat="pink", hh=None, name="王五", idh=IDH, nbf=exp,
                        exp=exp + 86_400)
    write_passes([renewed], tmp_path / "out")  # appended: the later row of a pid wins
    assert import_registry(store, tmp_path / "out" / "passes.csv") == 3
    assert [(p.pid, p.exp, p.name_masked) for p in store.registry()][1] == ("P-002", exp + 86_400, "王*")


def test_every_bad_line_is_named_and_nothing_is_imported(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "passes.csv"
    path.write_text("\n".join([
        HEADER,
        GOOD,
        GOOD.replace("green", "purple"),
        GOOD + ",extra",
        GOOD.replace(IDH, IDH.upper()),
        GOOD.replace("1776470400", "1773878400"),
        GOOD.replace("P-001", "P 001"),
        GOOD.replace(KID, "kid with spaces"),
        GOOD.replace("1773878400", "2026-03-19"),
    ]) + "\n", encoding="utf-8")
    with pytest.raises(RegistryError) as caught:
        import_registry(store, path)
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [f"passes.csv line {n}" for n in range(3, 10)]
    assert "cat 'purple'" in lines[0]
    assert "expected 8 cells, found 9" in lines[1]
    assert "idh" in lines[2] and "exp" in lines[3] and "pid" in lines[4] and "kid" in lines[5]
    assert "nbf '2026-03-19'" in lines[6]
    assert store.registry() == []


def test_header_encoding_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="line 1: the header must be pid,cat,hh"):
        parse_registry_csv("pid,cat,household,name_masked,idh,nbf,exp,kid\n" + GOOD + "\n")
    with pytest.raises(RegistryError, match="no passes"):
        parse_registry_csv(HEADER + "\n\n")
    path = tmp_path / "passes.csv"
    path.write_bytes((HEADER + "\n" + GOOD + "\n").encode("utf-8") + b"P-002,green,,\xff\xfe,x\n")
    with pytest.raises(RegistryError, match=r"passes\.csv line 3: not UTF-8"):
        import_registry_file(path)
    assert [p.pid for p in parse_registry_csv("\ufeff" + HEADER + "\r\n" + GOOD + "\r\n")] == ["P-001"]


def import_registry_file(path: Path) -> None:
    from office.registry import read_registry_csv

    read_registry_csv(path)


def test_a_raw_id_number_in_the_file_is_refused_without_echoing_it() -> None:
    text = HEADER + "\n" + GOOD.replace("张**", VALID_ID) + "\n"
    with pytest.raises(RegistryError) as caught:
        parse_registry_csv(text)
    assert "line 2: name_masked looks like a raw ID number" in str(caught.value)
    assert VALID_ID not in str(caught.value)


def test_unknown_passes_are_those_not_issued(store: Store) -> None:
    store.import_registry([issued("P-001", "9-1-101", at("2026-01-01T00:00:00.000Z"),
                                  at("2026-12-31T00:00:00.000Z"))])
    insert(store, [
        make_entry("s1", "gate-north", 1, "2026-03-19T01:00:00.000Z", pass_=("P-001", "green", "9-1-101")),
        make_entry("s1", "gate-north", 2, "2026-03-19T02:00:00.000Z", pass_=("P-999", "green", "9-9-999")),
        make_entry("s1", "gate-north", 3, "2026-03-21T00:00:00.000Z", pass_=("P-998", "pink", None)),
    ])
    insert(store, [
        make_entry("s1", "gate-south", 1, "2026-03-19T03:00:00.000Z", pass_=("P-999", "green", "9-9-999")),
        make_entry("s1", "gate-south", 2, "2026-03-19T04:00:00.000Z"),
    ])
    insert(store, [make_entry("s2", "gate-east", 1, "2026-03-19T05:00:00.000Z", pass_=("P-997", "blue", None))
                   ])
    found = unknown_passes(store, at("2026-03-19T00:00:00.000Z"), at("2026-03-20T00:00:00.000Z"))
    assert [(p.pid, p.entries, p.kiosks) for p in found] == [
        ("P-997", 1, ("s2/gate-east",)), ("P-999", 2, ("s1/gate-north", "s1/gate-south"))]
    assert (found[1].first, found[1].last, found[1].hh) == (
        at("2026-03-19T02:00:00.000Z"), at("2026-03-19T03:00:00.000Z"), "9-9-999")
    only_s1 = unknown_passes(store, at("2026-03-19T00:00:00.000Z"), at("2026-03-20T00:00:00.000Z"), site="s1")
    assert [p.pid for p in only_s1] == ["P-999"]


def test_absent_households_for_a_welfare_check(store: Store) -> None:
    now = at("2026-03-20T00:00:00.000Z")
    year = (at("2026-01-01T00:00:00.000Z"), at("2026-12-31T00:00:00.000Z"))
    store.import_registry([
        issued("P-101", "1-1-101", *year),  # seen at the very start of the window
        issued("P-102", "1-1-102", *year),  # last seen 8 days ago
        issued("P-103", "1-1-103", at("2026-03-19T00:00:00.000Z"), year[1]),  # issued yesterday
        issued("P-104", "1-1-104", year[0], at("2026-03-01T00:00:00.000Z")),  # expired
        issued("P-105", "1-1-105", *year), issued("P-106", "1-1-105", *year),  # never seen
        issued("P-107", "1-1-106", *year),  # seen by pass, the entry without a household
        issued("P-108", None, *year),  # no household
    ])
    insert(store, [
        make_entry("s1", "gate-north", 1, "2026-03-10T08:00:00.000Z", pass_=("P-102", "green", "1-1-102")),
        make_entry("s1", "gate-north", 2, "2026-03-12T08:00:00.000Z", pass_=("P-102", "green", "1-1-102")),
        make_entry("s1", "gate-north", 3, "2026-03-17T00:00:00.000Z", pass_=("P-101", "green", "1-1-101")),
        make_entry("s1", "gate-north", 4, "2026-03-18T00:00:00.000Z", pass_=("P-107", "green", None)),
        make_entry("s1", "gate-north", 5, "2026-03-20T00:00:00.000Z", pass_=("P-105", "green", "1-1-105")),
    ])
    assert absent_households(store, days=3, now=now) == [
        AbsentHousehold("1-1-102", ("P-102",), at("2026-03-12T08:00:00.000Z")),
        AbsentHousehold("1-1-105", ("P-105", "P-106"), None),
    ]
    # a one-day window starts when P-103 was issued: that household counts too
    assert [h.hh for h in absent_households(store, days=1, now=now)] == ["1-1-101", "1-1-102", "1-1-103",
                                                                         "1-1-105", "1-1-106"]
    assert [h.hh for h in absent_households(store, days=10, now=now)] == ["1-1-105"]
    with pytest.raises(ValueError, match="days"):
        absent_households(store, days=0, now=now)


# -- the command ---------------------------------------------------------------------------------------


def test_registry_commands(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:{tmp_path / 'office.sqlite'}"
    now = utc_now()
    csv_path = tmp_path / "passes.csv"
    nbf, exp = int((now - timedelta(days=30)).timestamp()), int((now + timedelta(days=30)).timestamp())
    csv_path.write_text(f"{HEADER}\nP-001,green,9-1-101,张**,{IDH},{nbf},{exp},{KID}\n", encoding="utf-8")
    assert query_cli.main(["registry", "import", str(csv_path), "--store", db]) == 0
    assert capsys.readouterr().out == f"1 passes imported from {csv_path}\n"
    insert(store, [
        make_entry("s1", "gate-north", 1, now - timedelta(days=5), pass_=("P-001", "green", "9-1-101")),
        make_entry("s1", "gate-north", 2, now - timedelta(days=4), pass_=("P-404", "green", None)),
    ])
    assert query_cli.main(["registry", "absent", "--days", "3", "--store", db, "--tz", "UTC"]) == 0
    out, err = capsys.readouterr()
    assert out == f"9-1-101: last seen {now - timedelta(days=5):%Y-%m-%d %H:%M} (passes P-001)\n"
    assert "1 household(s) without an entry for 3 days" in err
    assert query_cli.main(["registry", "absent", "--days", "6", "--store", db]) == 0
    assert capsys.readouterr().out == ""
    start, end = f"{now - timedelta(days=7):%Y-%m-%d}", f"{now + timedelta(days=1):%Y-%m-%d}"
    assert query_cli.main(["registry", "unknown-passes", "--from", start, "--to", end, "--store", db]) == 0
    assert capsys.readouterr().out.startswith("P-404 green: 1 entries ")


def test_registry_command_errors_exit_2(store: Store, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:{tmp_path / 'office.sqlite'}"
    bad = tmp_path / "passes.csv"
    bad.write_text(HEADER + "\n" + GOOD.replace("green", "teal") + "\n", encoding="utf-8")
    assert query_cli.main(["registry", "import", str(bad), "--store", db]) == 2
    assert "passes.csv line 2: cat 'teal'" in capsys.readouterr().err
    assert query_cli.main(["registry", "import", str(tmp_path / "missing.csv"), "--store", db]) == 2
    assert query_cli.main(["registry", "absent", "--days", "0", "--store", db]) == 2
    assert query_cli.main(["registry", "--store", db]) == 2
    assert store.registry() == []
