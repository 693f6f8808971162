"""The site HMAC key and the other secrets: who may read the file, how long a key is, bytes kept as read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from checkpoint.configtypes import SecretError
from kiosk.cli import main as cli
from kiosk.config import check_secrets, load_config

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = bytes(range(0xA0, 0xC0))  # 32 bytes, none of them whitespace


def kiosk_toml(tmp_path: Path, site: str) -> Path:
    conf = tmp_path / "kiosk.toml"
    conf.write_text(f'hardware = "emulated"\n[site]\nid = "s1"\nkiosk = "k1"\n{site}\n')
    return conf


def key_file(tmp_path: Path, data: bytes, mode: int = 0o600, name: str = "site.key") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def site_key_error(conf: Path) -> str:
    with pytest.raises(SecretError) as info:
        load_config(conf).site.hmac_key()
    return str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601], ids=oct)
def test_a_site_key_file_that_group_or_others_can_use_is_refused(tmp_path: Path, mode: int) -> None:
    key = key_file(tmp_path, GOOD_KEY, mode)
    message = site_key_error(kiosk_toml(tmp_path, f'hmac_key_file = "{key}"'))
    assert message.startswith(f"site.hmac_key: {key}")
    assert f"{mode:04o}" in message and "0600" in message
    assert "\n" not in message


def test_a_short_site_key_is_refused(tmp_path: Path) -> None:
    key = key_file(tmp_path, b"k")
    message = site_key_error(kiosk_toml(tmp_path, f'hmac_key_file = "{key}"'))
    assert message.startswith(f"site.hmac_key: {key}")
    assert "1 byte" in message and "at least 32" in message
    assert "\n" not in message


def test_the_host_name_file_is_no_site_key(tmp_path: Path) -> None:
    hostname = Path("/etc/hostname")
    if not hostname.is_file():
        pytest.skip("no /etc/hostname here")
    message = site_key_error(kiosk_toml(tmp_path, f'hmac_key_file = "{hostname}"'))
    assert message.startswith("site.hmac_key: /etc/hostname")
    copy = key_file(tmp_path, hostname.read_bytes(), 0o600, "hostname")  # even when only its owner reads it
    assert "at least 32" in site_key_error(kiosk_toml(tmp_path, f'hmac_key_file = "{copy}"'))


def test_a_binary_site_key_is_read_byte_for_byte(tmp_path: Path) -> None:
    raw = b"\n\t " + bytes(range(0x30, 0x50)) + b" \r\n\x0b"  # whitespace at both ends is key material
    assert len(raw) == 39
    key = key_file(tmp_path, raw)
    assert load_config(kiosk_toml(tmp_path, f'hmac_key_file = "{key}"')).site.hmac_key() == raw


def test_a_good_site_key_file_is_accepted(tmp_path: Path) -> None:
    key = key_file(tmp_path, GOOD_KEY, 0o400)
    config = load_config(kiosk_toml(tmp_path, 'hmac_key_file = "site.key"'))
    assert config.site.hmac_key() == GOOD_KEY
    assert check_secrets(config) == []
    key.chmod(0o600)
    assert config.site.hmac_key() == GOOD_KEY


def test_a_site_key_credential_gets_the_length_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "site_hmac_key").write_bytes(b"too short\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    conf = kiosk_toml(tmp_path, 'hmac_key_credential = "site_hmac_key"')
    message = site_key_error(conf)
    assert message.startswith(f"site.hmac_key: {creds / 'site_hmac_key'}") and "at least 32" in message
    (creds / "site_hmac_key").write_bytes(GOOD_KEY)
    assert load_config(conf).site.hmac_key() == GOOD_KEY


def test_a_password_keeps_its_trailing_newline_trimmed(tmp_path: Path) -> None:
    pw = tmp_path / "mqtt.pw"
    pw.write_text("broker password\n")
    conf = kiosk_toml(tmp_path, f'[mqtt]\npassword_file = "{pw}"')
    assert load_config(conf).mqtt.password() == b"broker password"


def test_check_config_refuses_a_loose_site_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = key_file(tmp_path, GOOD_KEY, 0o644)
    conf = kiosk_toml(tmp_path, 'hmac_key_file = "site.key"')
    assert cli.main(["check-config", str(conf)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{conf}: site.hmac_key: {key}") and "0644" in line
    key.chmod(0o600)
    assert cli.main(["check-config", str(conf)]) == 0


def _install_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Installing on a Pi\n(.*?)^## ", text, re.S | re.M)
    assert match is not None
    return match.group(1)


def test_the_install_steps_make_secrets_under_umask_077() -> None:
    section = _install_section()
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    writes_secret = [line for line in block.group(1).splitlines()
                     if "credentials/" in line and re.search(r"tee|>|install|cp ", line)]
    assert writes_secret, "the install steps create the site key"
    for line in writes_secret:
        assert "umask 077" in line, line


def test_the_install_steps_give_a_key_the_kiosk_accepts(tmp_path: Path) -> None:
    """Run the README's key line (with the path changed) as this user: the file is 0600 and 32 bytes."""
    section = _install_section()
    (line,) = [ln for ln in section.splitlines() if "site_hmac_key" in ln and "urandom" in ln]
    target = tmp_path / "site_hmac_key"
    command = line.replace("/etc/checkpoint-kiosk/credentials/site_hmac_key", str(target))
    command = re.sub(r"\bsudo( -u \w+)? ", "", command)
    old = os.umask(0o022)
    try:
        assert os.system(command) == 0
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o600
    key = load_config(kiosk_toml(tmp_path, f'hmac_key_file = "{target}"')).site.hmac_key()
    assert key is not None and len(key) == 32
