"""The systemd units: required settings, and `systemd-analyze verify` when available."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from office.config import load_office_config

UNITS = Path(__file__).resolve().parent.parent / "systemd"
BIN = Path(sys.executable).parent


def service(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_kiosk_unit_settings() -> None:
    unit = service("checkpoint-kiosk.service")
    assert unit["Type"] == ["notify"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["WatchdogSec"]
    assert set(unit["SupplementaryGroups"][0].split()) == {"gpio", "i2c", "video", "audio"}
    assert "GPIOZERO_PIN_FACTORY=lgpio" in unit["Environment"]
    assert unit["StateDirectory"] == ["checkpoint-kiosk"]
    assert "PrivateDevices" not in unit, "PrivateDevices hides /dev/gpiochip*, /dev/i2c-*, /dev/video*"
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert any(c.startswith("site_hmac_key:") for c in unit["LoadCredential"])


def test_kiosk_unit_gives_lgpio_a_writable_working_directory() -> None:
    """Issue 13, finding 1: started in /, lgpio could not make its notification pipe and the daemon
    crash-looped."""
    unit = service("checkpoint-kiosk.service")
    assert unit["RuntimeDirectory"] == ["checkpoint-kiosk"]
    assert unit["WorkingDirectory"] == ["/run/checkpoint-kiosk"]
    assert "LG_WD=/run/checkpoint-kiosk" in unit["Environment"]


def test_office_unit_settings() -> None:
    unit = service("checkpoint-office.service")
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["on-failure"]
    assert "kiosk-office run" in unit["ExecStart"][0]


def test_office_unit_loads_every_credential_the_example_config_names() -> None:
    """The example config reads the web session key, the web app's broker password and a site's signing
    keys from credentials: without a LoadCredential= for each, the service could not start."""
    config = load_office_config(UNITS.parent / "config" / "office.example.toml")
    named = {config.broker.password_credential, config.web.session_key_credential,
             config.web.broker_password_credential}
    for site in config.sites.values():
        named |= {site.hmac_key_credential, site.pass_key_credential, site.command_key_credential}
    loaded = {line.partition(":")[0] for line in service("checkpoint-office.service")["LoadCredential"]}
    assert None not in named and "web_session_key" in named
    assert named <= loaded, named - loaded


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ["checkpoint-kiosk.service", "checkpoint-office.service"])
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    # Point ExecStart at this venv so verify can check the executables exist.
    text = (UNITS / name).read_text().replace("/opt/checkpoint-kiosk/.venv/bin/", f"{BIN}/")
    unit = tmp_path / name
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if name in line or "Unknown" in line]
    assert result.returncode == 0 and not problems, result.stderr
