"""kiosk-admin: keygen, export-pubkeys, issue-pass (single and batch), issue-health-token, revoke."""

import csv
import shutil
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from checkpoint import idnumber
from checkpoint.keys import KeyRing
from checkpoint.reasons import Reason
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.revocation import RevocationList
from office.admin import cli as admin

BIN = Path(sys.executable).parent
ID_NUMBER = "11010519491231002X"  # the GB 11643 specimen number
OTHER_ID = "370102198001011237"
SITE_KEY = b"site-secret-for-tests, 32 bytes long"


def test_keygen_writes_private_0600_and_matching_public(tmp_path: Path) -> None:
    path = tmp_path / "office.key"
    assert admin.main(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = serialization.load_pem_public_key((tmp_path / "office.key.pub").read_bytes())
    assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
    public.verify(private.sign(b"pass"), b"pass")


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "office.key"
    assert admin.main(["keygen", str(path)]) == 0
    before = path.read_bytes()
    assert admin.main(["keygen", str(path)]) == 1
    assert path.read_bytes() == before
    assert admin.main(["keygen", "--force", str(path)]) == 0
    assert path.read_bytes() != before


def test_console_scripts_installed() -> None:
    for name in ("kiosk", "kiosk-admin", "kiosk-office"):
        result = subprocess.run([str(BIN / name), "--version"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and "0.1.0" in result.stdout, (name, result.stderr)


def _office(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An office key, its exported public key directory and a site key file."""
    key = tmp_path / "office.key"
    assert admin.main(["keygen", str(key)]) == 0
    keys = tmp_path / "keys"
    assert admin.main(["export-pubkeys", str(key), "--out", str(keys)]) == 0
    site = tmp_path / "site.key"
    site.write_bytes(SITE_KEY)
    site.chmod(0o600)
    return key, keys, site


def _decode_png(path: Path) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(cv2.imread(str(path), 0))]


def _files_contain(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_issue_pass_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, site = _office(tmp_path)
    assert [p.suffix for p in keys.iterdir()] == [".pub"]
    capsys.readouterr()
    out = tmp_path / "out"
    assert admin.main(["issue-pass", "--key", str(key), "--pid", "P-00017", "--cat", "blue",
                       "--hh", "9-23-301", "--name", "张三丰", "--id-number", ID_NUMBER,
                       "--site-key", str(site), "--from", "2026-03-01T00:00:00+08:00", "--days", "30",
                       "--out", str(out)]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("CKP1.") and (out / "P-00017.txt").read_text().strip() == text
    verdict = PassVerifier(KeyRing.from_dir(keys)).verify(text, now=datetime(2026, 3, 15, tzinfo=UTC))
    assert verdict.valid and verdict.pass_ is not None
    facts = verdict.pass_
    assert (facts.pid, facts.cat, facts.hh, facts.name) == ("P-00017", "blue", "9-23-301", "张**")
    assert facts.idh == idnumber.parse(ID_NUMBER).person_ref(SITE_KEY)
    assert facts.exp - facts.nbf == 30 * 86_400
    assert facts.nbf == int(datetime(2026, 2, 28, 16, tzinfo=UTC).timestamp())
    assert _decode_png(out / "P-00017.png") == [text]
    rows = list(csv.DictReader((out / "passes.csv").open(encoding="utf-8")))
    assert rows == [{"pid": "P-00017", "cat": "blue", "hh": "9-23-301", "name_masked": "张**",
                     "idh": facts.idh, "nbf": str(facts.nbf), "exp": str(facts.exp), "kid": facts.kid}]
    assert _files_contain(tmp_path, ID_NUMBER) == [] and _files_contain(tmp_path, "张三丰") == []
    expired = PassVerifier(KeyRing.from_dir(keys)).verify(text, now=datetime(2026, 4, 1, tzinfo=UTC))
    assert expired.reasons == (Reason.PASS_EXPIRED,)


def test_issue_pass_with_a_chosen_kid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, _ = _office(tmp_path)
    named = tmp_path / "named"
    named.mkdir()
    shutil.copy(next(keys.iterdir()), named / "office-2026.pub")
    capsys.readouterr()
    assert admin.main(["issue-pass", "--key", str(key), "--kid", "office-2026", "--pid", "P-1",
                       "--cat", "pink", "--idh", "ab" * 32, "--days", "1",
                       "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out.strip()
    now = datetime.now(UTC)
    assert PassVerifier(KeyRing.from_dir(named)).verify(text, now=now).valid
    assert PassVerifier(KeyRing.from_dir(keys)).verify(text, now=now).reasons == (Reason.PASS_INVALID,)


def test_batch_writes_pngs_registry_and_sheet_without_raw_id_numbers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, site = _office(tmp_path)
    batch = tmp_path / "households.csv"
    spaced = "110105 19491231 002x"  # the same person as ID_NUMBER, typed differently
    batch.write_text("\ufeffpid,cat,hh,name,id_number,nbf,days\n"
                     f"P-00001,green,9-23-301,张三丰,{ID_NUMBER},2026-03-01,30\n"
                     f"P-00002,blue,9-23-302,Anna Li,{spaced},,\n"
                     f"P-00003,pink,,王五,{OTHER_ID},,7\n", encoding="utf-8")
    out = tmp_path / "out"
    assert admin.main(["issue-pass", "--key", str(key), "--batch", str(batch), "--site-key", str(site),
                       "--days", "90", "--out", str(out)]) == 0
    assert "3 passes" in capsys.readouterr().out
    ring = KeyRing.from_dir(keys)
    rows = list(csv.DictReader((out / "passes.csv").open(encoding="utf-8")))
    assert [r["pid"] for r in rows] == ["P-00001", "P-00002", "P-00003"]
    assert [r["name_masked"] for r in rows] == ["张**", "A******", "王*"]
    assert rows[0]["idh"] == rows[1]["idh"] == idnumber.parse(ID_NUMBER).person_ref(SITE_KEY)
    assert rows[2]["idh"] == idnumber.parse(OTHER_ID).person_ref(SITE_KEY)
    assert [int(r["exp"]) - int(r["nbf"]) for r in rows] == [30 * 86_400, 90 * 86_400, 7 * 86_400]
    for row in rows:
        text = (out / f"{row['pid']}.txt").read_text().strip()
        verdict = PassVerifier(ring).verify(text, now=datetime.fromtimestamp(int(row["nbf"]) + 60, UTC))
        assert verdict.valid and verdict.pass_ is not None and verdict.pass_.cat == row["cat"]
    assert _decode_png(out / "P-00002.png") == [(out / "P-00002.txt").read_text().strip()]
    sheet = (out / "sheet.html").read_text(encoding="utf-8")
    assert sheet.count("<svg") == 3 and "张**" in sheet and "size: A4" in sheet and "9-23-302" in sheet
    for raw in (ID_NUMBER, ID_NUMBER.lower(), spaced, OTHER_ID, "张三丰", "Anna Li"):
        assert _files_contain(out, raw) == [], raw


def test_bad_batch_writes_nothing_and_names_every_bad_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, _, site = _office(tmp_path)
    bad_number = ID_NUMBER[:-1] + "1"  # wrong check digit
    batch = tmp_path / "households.csv"
    batch.write_text(f"pid,cat,id_number\nP-1,green,{ID_NUMBER}\nP-2,purple,{ID_NUMBER}\n"
                     f"P-3,green,{bad_number}\nP-1,green,{ID_NUMBER}\nP-4,green,{ID_NUMBER},x\n",
                     encoding="utf-8")
    out = tmp_path / "out"
    capsys.readouterr()
    assert admin.main(["issue-pass", "--key", str(key), "--batch", str(batch), "--site-key", str(site),
                       "--days", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 3: cat" in err and "line 4: ID number: wrong check digit" in err and "line 5: pid" in err
    assert "line 6: more cells than columns" in err
    assert "line 2" not in err and "Traceback" not in err and bad_number not in err and ID_NUMBER not in err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--pid", "P-1", "--cat", "green", "--days", "1"], "ID number"),
    (["--pid", "P-1", "--cat", "green", "--id-number", ID_NUMBER, "--days", "1"], "--site-key"),
    (["--pid", "P-1", "--cat", "green", "--idh", "ab" * 32], "--days"),
    (["--pid", "P 1", "--cat", "green", "--idh", "ab" * 32, "--days", "1"], "pid"),
    (["--pid", "P-1", "--cat", "green", "--idh", "ab" * 32, "--exp", "yesterday"], "time"),
    (["--pid", "P-1", "--cat", "green", "--idh", "ab" * 32, "--days", "1", "--tz", "Mars/Base"], "time zone"),
    (["--batch", "x.csv", "--pid", "P-1", "--days", "1"], "--batch"),
    (["--cat", "green", "--idh", "ab" * 32, "--days", "1"], "--pid"),
])
def test_issue_pass_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str], message: str) -> None:
    key, _, _ = _office(tmp_path)
    capsys.readouterr()
    assert admin.main(["issue-pass", "--key", str(key), "--out", str(tmp_path / "out"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kiosk-admin issue-pass: ") and message in err and "Traceback" not in err


def test_missing_or_wrong_key_file_is_a_clear_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, keys, _ = _office(tmp_path)
    capsys.readouterr()
    public = next(keys.iterdir())
    for key in (tmp_path / "missing.key", public):
        assert admin.main(["revoke", "--key", str(key), "--site", "s1", "P-1"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("kiosk-admin revoke: ") and str(key) in err and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:
        admin.main(["issue-pass", "--key", str(public), "--cat", "purple", "--out", str(tmp_path)])
    assert usage.value.code == 2


def test_issue_health_token_verifies_and_makes_a_png(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, site = _office(tmp_path)
    png = tmp_path / "token.png"
    capsys.readouterr()
    assert admin.main(["issue-health-token", "--key", str(key), "--status", "yellow",
                       "--id-number", ID_NUMBER, "--site-key", str(site), "--png", str(png)]) == 0
    text = capsys.readouterr().out.strip()
    verifier = HealthTokenVerifier(KeyRing.from_dir(keys))
    verdict = verifier.verify(text, now=datetime.now(UTC))
    assert verdict.valid and verdict.reasons == (Reason.HEALTH_CODE_YELLOW,) and verdict.health is not None
    assert verdict.health.idh == idnumber.parse(ID_NUMBER).person_ref(SITE_KEY)
    assert _decode_png(png) == [text] and _files_contain(tmp_path, ID_NUMBER) == []
    later = datetime.fromtimestamp(time.time() + 300, UTC)
    assert verifier.verify(text, now=later).reasons == (Reason.HEALTH_CODE_EXPIRED,)


def test_revoke_signs_a_list_the_kiosk_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, _ = _office(tmp_path)
    more = tmp_path / "revoked.txt"
    more.write_text("# lost passes\nP-00020\n\nP-00021  # stolen\n")
    listing = tmp_path / "list.txt"
    capsys.readouterr()
    assert admin.main(["revoke", "--key", str(key), "--site", "s1", "--serial", "7", "P-00017",
                       "--from-file", str(more), "--out", str(listing)]) == 0
    text = capsys.readouterr().out.strip()
    assert listing.read_text().strip() == text and text.startswith("CKR1.")
    revocations = RevocationList(KeyRing.from_dir(keys), site="s1")
    assert revocations.offer(listing.read_bytes()).accepted and revocations.serial == 7
    assert revocations.revoked() == frozenset({"P-00017", "P-00020", "P-00021"})
    assert admin.main(["revoke", "--key", str(key), "--site", "s1", "--serial", "6"]) == 0
    assert not revocations.offer(capsys.readouterr().out.strip()).accepted


def test_export_pubkeys_refuses_to_replace_a_different_key(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    key, keys, _ = _office(tmp_path)
    target = next(keys.iterdir())
    good = target.read_bytes()
    assert admin.main(["export-pubkeys", str(key) + ".pub", "--out", str(keys)]) == 0  # same key: fine
    target.write_text("something else")
    capsys.readouterr()
    assert admin.main(["export-pubkeys", str(key), "--out", str(keys)]) == 1
    assert "--force" in capsys.readouterr().err and target.read_text() == "something else"
    assert admin.main(["export-pubkeys", "--force", str(key), "--out", str(keys)]) == 0
    assert target.read_bytes() == good
