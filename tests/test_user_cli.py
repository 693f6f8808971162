"""`kiosk-office user`: add, passwd, disable, enable and list, each change audited."""

from __future__ import annotations

import getpass
import io
import sys
from pathlib import Path

import pytest

from office.cli.main import main
from office.store.sqlite import SqliteStore
from office.web.passwords import verify_password


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(monkeypatch: pytest.MonkeyPatch, db: Path, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(["user", *argv, "--store", f"sqlite:{db}"])


def test_add_passwd_disable_enable_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "office.sqlite"
    assert run(monkeypatch, db, "add", "wang", "--role", "office", stdin="first password\n") == 0
    assert run(monkeypatch, db, "add", "wang", stdin="first password\n") == 1
    assert "exists" in capsys.readouterr().err
    assert run(monkeypatch, db, "passwd", "wang", "--role", "admin", stdin="second password\n") == 0
    assert run(monkeypatch, db, "disable", "wang") == 0
    assert run(monkeypatch, db, "enable", "wang") == 0
    assert run(monkeypatch, db, "disable", "li") == 1
    capsys.readouterr()
    assert run(monkeypatch, db, "list") == 0
    assert capsys.readouterr().out.startswith("wang\tadmin\tactive\t")
    with SqliteStore(db) as store:
        wang = store.user("wang")
        assert wang is not None and wang.password_hash.startswith("$argon2id$")
        assert verify_password(wang.password_hash, "second password")
        assert not verify_password(wang.password_hash, "first password")
        actions = [a.action for a in reversed(store.audit_log())]
        assert actions == ["user.add", "user.passwd", "user.role", "user.disable", "user.enable"]
        assert {a.who for a in store.audit_log()} == {f"cli:{getpass.getuser()}"}


def test_the_prompt_asks_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "office.sqlite"
    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter(["a good password", "a good passw0rd"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert main(["user", "add", "wang", "--store", f"sqlite:{db}"]) == 2
    assert "differ" in capsys.readouterr().err
    answers = iter(["a good password", "a good password"])
    assert main(["user", "add", "wang", "--store", f"sqlite:{db}"]) == 0
    with SqliteStore(db) as store:
        wang = store.user("wang")
        assert wang is not None and wang.role == "guard"


def test_short_passwords_and_odd_names_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "office.sqlite"
    assert run(monkeypatch, db, "add", "wang", stdin="short\n") == 2
    assert "at least 8" in capsys.readouterr().err
    assert run(monkeypatch, db, "add", "wang li", stdin="long enough\n") == 2
    with pytest.raises(SystemExit):
        run(monkeypatch, db, "add", "--role", "root", "x", stdin="long enough\n")
    with SqliteStore(db) as store:
        assert store.users() == []
