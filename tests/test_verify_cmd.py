"""`kiosk verify`: every refusal with its reason code, from keys and passes made by kiosk-admin."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from checkpoint import idnumber
from kiosk import sim
from kiosk.cli import main as cli
from office.admin import cli as admin

BIN = Path(sys.executable).parent
DCC_DIR = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dcc"
REGISTERED = "11010519491231002X"
UNREGISTERED = "31010419850715001" + idnumber.check_char("31010419850715001")
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Site:
    root: Path
    config: Path
    office_key: Path
    health_key: Path
    site_key: Path


def iso(moment: datetime) -> str:
    return moment.isoformat()


def run_admin(*argv: str) -> None:
    assert admin.main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    office, health, site_key = root / "office.key", root / "health.key", root / "site.key"
    run_admin("keygen", str(office))
    run_admin("keygen", str(health))
    run_admin("export-pubkeys", str(office), "--out", str(root / "keys" / "passes"))
    run_admin("export-pubkeys", str(health), "--out", str(root / "keys" / "health"))
    site_key.write_bytes(b"a site key for the verify tests, 32+ bytes")
    site_key.chmod(0o600)
    registry = root / "state" / "registry.sqlite"
    run_admin("register-resident", "--db", str(registry), "--site-key", str(site_key),
              "--id-number", REGISTERED, "--household", "9-23-301")
    config = root / "kiosk.toml"
    config.write_text("""
hardware = "emulated"
[site]
id = "s1"
kiosk = "gate-north"
hmac_key_file = "site.key"
[camera]
source = "files"
path = "frames"
[passes]
keys_dir = "keys/passes"
registry = "state/registry.sqlite"
[health]
providers = ["token", "dcc"]
token_keys_dir = "keys/health"
[storage]
state_dir = "state"
""")
    return Site(root, config, office, health, site_key)


def verify(site: Site, payload: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """Verify as of NOW, not the wall clock: a 180 s token must not expire while a long suite runs."""
    clock = () if "--at" in extra else ("--at", iso(NOW))
    code = cli.main(["verify", payload, "--config", str(site.config), "--json", *clock, *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return code, json.loads(out[0])


def fresh_dir(site: Site) -> str:
    """A new --out directory: issue-pass refuses a pid already in an --out's passes.csv."""
    return tempfile.mkdtemp(prefix="issued-", dir=site.root)


def issue_pass(site: Site, capsys: pytest.CaptureFixture[str], *, cat: str = "green",
               start: datetime = NOW - timedelta(days=1), end: datetime = NOW + timedelta(days=30),
               key: Path | None = None, pid: str = "P-00017") -> str:
    capsys.readouterr()
    run_admin("issue-pass", "--key", str(key or site.office_key), "--pid", pid, "--cat", cat,
              "--hh", "9-23-301", "--name", "张三", "--id-number", REGISTERED,
              "--site-key", str(site.site_key), "--from", iso(start), "--exp", iso(end),
              "--out", fresh_dir(site))
    return capsys.readouterr().out.strip().splitlines()[-1]


def issue_token(site: Site, capsys: pytest.CaptureFixture[str], status: str, *,
                iat: datetime = NOW - timedelta(seconds=20), key: Path | None = None) -> str:
    capsys.readouterr()
    run_admin("issue-health-token", "--key", str(key or site.health_key), "--status", status,
              "--iat", iso(iat), "--ttl-s", "7200")
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_valid_pass(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = verify(site, issue_pass(site, capsys), capsys=capsys)
    assert (code, verdict["kind"], verdict["valid"], verdict["reasons"]) == (0, "pass", True, [])
    assert verdict["pass"]["pid"] == "P-00017" and verdict["pass"]["cat"] == "green"
    assert verdict["pass"]["name"] == "张*"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", "pass_invalid"),
        ("expired", "pass_expired"),
        ("not_yet_valid", "pass_not_yet_valid"),
        ("revoked", "pass_revoked"),
    ],
)
def test_refused_passes(site: Site, capsys: pytest.CaptureFixture[str], case: str, reason: str) -> None:
    if case == "forged":
        stranger = site.root / "stranger.key"
        if not stranger.exists():
            run_admin("keygen", str(stranger))
        # The office's payload (and kid) with a stranger's signature: only the signature is wrong.
        prefix, office_body, _ = issue_pass(site, capsys).split(".")
        stranger_signature = issue_pass(site, capsys, key=stranger).split(".")[2]
        text = ".".join((prefix, office_body, stranger_signature))
    elif case == "expired":
        text = issue_pass(site, capsys, start=NOW - timedelta(days=30), end=NOW - timedelta(days=1))
    elif case == "not_yet_valid":
        text = issue_pass(site, capsys, start=NOW + timedelta(days=2), end=NOW + timedelta(days=30))
    else:
        text = issue_pass(site, capsys, pid="P-00099")
        revocations = site.root / "state" / "revocations.txt"
        run_admin("revoke", "--key", str(site.office_key), "--site", "s1", "--serial", "5", "P-00099",
                  "--out", str(revocations))
        capsys.readouterr()
    code, verdict = verify(site, text, capsys=capsys)
    assert code == 1 and verdict["kind"] == "pass" and reason in verdict["reasons"]


@pytest.mark.parametrize(
    ("status", "age", "valid", "reasons"),
    [
        ("green", timedelta(seconds=20), True, []),
        ("red", timedelta(seconds=20), True, ["health_code_red"]),
        ("yellow", timedelta(seconds=20), True, ["health_code_yellow"]),
        ("green", timedelta(minutes=10), False, ["health_code_expired"]),  # a screenshot
    ],
)
def test_health_tokens(site: Site, capsys: pytest.CaptureFixture[str], status: str, age: timedelta,
                       valid: bool, reasons: list[str]) -> None:
    code, verdict = verify(site, issue_token(site, capsys, status, iat=NOW - age), capsys=capsys)
    assert verdict["kind"] == "health_token"
    assert (verdict["valid"], verdict["reasons"]) == (valid, reasons)
    assert code == (0 if valid and not reasons else 1)


def test_forged_health_token(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    text = issue_token(site, capsys, "green", key=site.office_key)  # signed, but not by the health key
    code, verdict = verify(site, text, capsys=capsys)
    assert code == 1 and verdict["reasons"] == ["health_code_invalid"]


@pytest.mark.parametrize(
    ("number", "valid", "status", "reasons"),
    [
        (REGISTERED, True, "registered", []),
        (UNREGISTERED, False, "not_registered", ["no_pass"]),
        ("110105194912310021", False, "invalid", ["pass_invalid"]),  # wrong check digit
    ],
)
def test_id_numbers(site: Site, capsys: pytest.CaptureFixture[str], number: str, valid: bool, status: str,
                    reasons: list[str]) -> None:
    code, verdict = verify(site, number, capsys=capsys)
    assert code == (0 if valid else 1) and verdict["kind"] == "id_number"
    assert (verdict["valid"], verdict["status"], verdict["reasons"]) == (valid, status, reasons)
    assert number not in json.dumps(verdict)
    if valid:
        assert verdict["person"]["masked"] == idnumber.mask(number)
        assert verdict["person"]["household"] == "9-23-301"


@pytest.mark.parametrize("garbage", ["hello", "CKP1.not.base64!", "HCT1.", "HC1:%%%", "\u202e\u0000x" * 50])
def test_garbage_is_an_unknown_or_invalid_code(site: Site, capsys: pytest.CaptureFixture[str],
                                               garbage: str) -> None:
    code, verdict = verify(site, garbage, capsys=capsys)
    assert code == 1 and not verdict["valid"]
    assert verdict["reasons"][0] in {"unknown_code", "pass_invalid", "health_code_invalid"}


def _dcc_vector() -> dict[str, Any]:
    for path in sorted(DCC_DIR.glob("*/2DCode/raw/*.json")):
        data = json.loads(path.read_text())
        results = data.get("EXPECTEDRESULTS", {})
        if results.get("EXPECTEDVERIFY") is True and results.get("EXPECTEDEXPIRATIONCHECK") is True:
            return dict(data)
    pytest.skip("no DCC conformance vectors at ../shared/testdata/dcc")


def test_dcc_with_dsc_and_clock(site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    vector = _dcc_vector()
    clock, cert = vector["TESTCTX"]["VALIDATIONCLOCK"], vector["TESTCTX"]["CERTIFICATE"]
    code, verdict = verify(site, vector["PREFIX"], "--dsc", cert, "--at", clock, capsys=capsys)
    assert (code, verdict["kind"], verdict["status"]) == (0, "dcc", "green")
    pem = tmp_path / "dsc.der"
    pem.write_bytes(base64.b64decode(cert))
    code, verdict = verify(site, vector["PREFIX"], "--dsc", str(pem), "--at", clock, capsys=capsys)
    assert verdict["status"] == "green"
    code, verdict = verify(site, vector["PREFIX"], "--at", clock, capsys=capsys)
    assert code == 1 and verdict["reasons"] == ["health_code_invalid"]


def test_usage_errors_exit_2(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "x", "--config", str(site.config), "--at", "yesterday"]) == 2
    assert cli.main(["verify", "x", "--config", str(site.config), "--dsc", "not a cert"]) == 2
    assert "not a certificate" in capsys.readouterr().err


def test_console_scripts_from_the_installed_package(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    text = issue_pass(site, capsys)
    done = subprocess.run([BIN / "kiosk", "verify", "--config", str(site.config), "--json", text],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "pass"
    done = subprocess.run([BIN / "kiosk", "verify", "--config", str(site.config), "-"], input=REGISTERED,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("id_number: valid registered")
    assert REGISTERED not in done.stdout + done.stderr


def test_scan_console_script_json_contract() -> None:
    frame = Path(sim.__file__).parent / "data" / "frames" / "001-code.png"
    done = subprocess.run([BIN / "kiosk", "scan", "--json", str(frame)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["path"] == str(frame) and line["ms"] >= 0
    assert [c["text"] for c in line["codes"]] == ["checkpoint-kiosk demo frame"]
    assert base64.b64decode(line["codes"][0]["bytes_b64"]) == b"checkpoint-kiosk demo frame"


# -- v2 (issue 15): the travel card, the platform's holder reference, and the gate's new reasons -----------

HPR, OTHER_HPR = "platform-holder-0017", "platform-holder-0099"


def issue_v2_token(site: Site, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    run_admin("issue-health-token", "--key", str(site.health_key), "--status", "green",
              "--iat", iso(NOW - timedelta(seconds=20)), "--ttl-s", "7200", *extra)
    return capsys.readouterr().out.strip().splitlines()[-1]


def issue_v2_pass(site: Site, capsys: pytest.CaptureFixture[str], hpr: str = HPR) -> str:
    capsys.readouterr()
    run_admin("issue-pass", "--key", str(site.office_key), "--pid", "P-00200", "--cat", "green",
              "--id-number", REGISTERED, "--site-key", str(site.site_key), "--hpr", hpr,
              "--from", iso(NOW - timedelta(days=1)), "--exp", iso(NOW + timedelta(days=30)),
              "--out", fresh_dir(site))
    return capsys.readouterr().out.strip().splitlines()[-1]


def travel_config(site: Site) -> Path:
    config = site.root / "kiosk-travel.toml"
    config.write_text(site.config.read_text() + '[policy]\nrequire = ["health", "pass", "travel"]\n')
    return config


def test_v2_token_shows_its_travel_card(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    text = issue_v2_token(site, capsys, "--travel", "green", "--hpr", HPR)
    code, verdict = verify(site, text, capsys=capsys)
    assert (code, verdict["valid"], verdict["reasons"]) == (0, True, [])
    assert verdict["health"]["travel"] == "green" and verdict["health"]["star"] is False
    assert verdict["health"]["hpr"] == HPR
    starred = issue_v2_token(site, capsys, "--travel", "green", "--star")
    code, verdict = verify(site, starred, capsys=capsys)
    assert (code, verdict["reasons"]) == (1, ["travel_risk"])
    assert cli.main(["verify", starred, "--config", str(site.config), "--at", iso(NOW)]) == 1
    line = capsys.readouterr().out
    assert "health token green travel green starred" in line and "reasons travel_risk" in line


def test_v1_token_says_travel_none_and_no_travel_code_when_required(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    v1 = issue_token(site, capsys, "green")
    assert cli.main(["verify", v1, "--config", str(site.config), "--at", iso(NOW)]) == 0
    assert "travel none" in capsys.readouterr().out
    code, verdict = verify(site, v1, "--config", str(travel_config(site)), capsys=capsys)
    assert (code, verdict["valid"], verdict["reasons"]) == (1, True, ["no_travel_code"])
    v2 = issue_v2_token(site, capsys, "--travel", "green")
    code, verdict = verify(site, v2, "--config", str(travel_config(site)), capsys=capsys)
    assert (code, verdict["reasons"]) == (0, [])


def test_a_code_naming_another_holder(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    a_pass = issue_v2_pass(site, capsys)
    code, verdict = verify(site, a_pass, capsys=capsys)
    assert code == 0 and verdict["pass"]["hpr"] == HPR
    own = issue_v2_token(site, capsys, "--travel", "green", "--hpr", HPR)
    borrowed = issue_v2_token(site, capsys, "--travel", "green", "--hpr", OTHER_HPR)
    assert verify(site, own, "--with", a_pass, capsys=capsys)[1]["reasons"] == []
    code, verdict = verify(site, borrowed, "--with", a_pass, capsys=capsys)
    assert (code, verdict["reasons"]) == (1, ["health_code_not_holder"])
    v1_pass = issue_pass(site, capsys)  # no hpr: nothing to compare a v2 code with
    assert verify(site, borrowed, "--with", v1_pass, capsys=capsys)[1]["reasons"] == []


def test_admin_refuses_v2_options_without_travel(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["issue-health-token", "--key", str(site.health_key), "--status", "green"]
    assert admin.main([*base, "--star"]) != 0
    assert admin.main([*base, "--hpr", HPR]) != 0
    assert admin.main([*base, "--travel", "green", "--id-number", REGISTERED,
                       "--site-key", str(site.site_key)]) != 0
    assert admin.main([*base, "--travel", "green", "--hpr", "bad ref"]) != 0
    err = capsys.readouterr().err
    assert "need --travel" in err and "not by ID number" in err
