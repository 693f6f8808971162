"""Config loading, validation messages and secrets."""

from pathlib import Path

import pytest

from checkpoint.configtypes import SecretError, read_secret
from checkpoint.tomlconfig import ConfigError, find_line
from kiosk.cli import main as cli
from kiosk.config import KioskConfig, check_secrets, load_config, load_embedded, parse_config

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = 'hardware = "emulated"\n[site]\nid = "s1"\nkiosk = "k1"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_shipped_configs_validate() -> None:
    example = load_config(ROOT / "config" / "kiosk.example.toml")
    assert example.hardware == "real"
    assert example.policy.fever_threshold_c == 37.3
    assert example.policy.category["red"].action == "attention"
    simulate = load_config(ROOT / "config" / "simulate.toml")
    assert simulate.hardware == "emulated"
    assert simulate.camera.path is not None and simulate.camera.path.is_dir()


def test_embedded_default_is_simulate() -> None:
    config = load_embedded()
    assert config.hardware == "emulated"
    assert config.mqtt.local_broker
    assert config.camera.path is not None and any(config.camera.path.glob("*.png"))
    assert not str(config.storage.state_dir).startswith("~")


def test_defaults_fill_sections() -> None:
    config = parse_config(MINIMAL)
    assert config.gate.relay_pulse_s == 1.5
    assert config.voice.prompt_texts()["greet"] == "请出示健康码和出入证"
    assert config.policy.category["pink"].hours == "08:00-20:00"


def test_misspelled_key_names_key_and_line() -> None:
    text = MINIMAL + "[gate]\nrelay_pin = 17\nrelay_pulse = 2\n"
    (msg,) = problems(text)
    assert msg.startswith("gate.relay_pulse (line 7): unknown key 'relay_pulse'")


def test_out_of_range_threshold() -> None:
    text = MINIMAL + "[policy]\nfever_threshold_c = 45\n"
    (msg,) = problems(text)
    assert "policy.fever_threshold_c (line 6)" in msg
    assert "got 45" in msg and "less than or equal to 42" in msg


def test_wrong_type() -> None:
    text = MINIMAL + '[camera]\nfps = "fast"\n'
    (msg,) = problems(text)
    assert "camera.fps (line 6)" in msg and "'fast'" in msg and "integer" in msg


def test_every_error_reported_at_once() -> None:
    text = MINIMAL + "[camera]\nfps = 0\nwidth = 5\n[thermometer]\naddres = 90\n"
    found = problems(text)
    assert len(found) == 3
    assert [m.split(" ")[0] for m in found] == ["camera.width", "camera.fps", "thermometer.addres"]


def test_missing_required_and_bad_site_id() -> None:
    found = problems('[site]\nid = "a/b"\n')
    assert any(m.startswith("site.id (line 2)") for m in found)
    assert any(m.startswith("site.kiosk") and "missing" in m for m in found)


def test_toml_syntax_error_has_line() -> None:
    (msg,) = problems(MINIMAL + "[gate\n")
    assert "TOML syntax error" in msg and "line 5" in msg


def test_cross_field_rules() -> None:
    assert any("both use GPIO 5" in m for m in problems(MINIMAL + "[gate]\nrelay_pin = 5\n"))
    assert any("hmac_key" in m for m in problems(MINIMAL.replace("emulated", "real")))
    assert any("camera.path is required" in m
               for m in problems(MINIMAL + '[camera]\nsource = "files"\n'))
    assert any("HH:MM-HH:MM" in m
               for m in problems(MINIMAL + '[policy.category.pink]\nhours = "8-20"\n'))
    assert any("unknown prompt key" in m
               for m in problems(MINIMAL + '[voice.prompts]\ngreeting = "hi"\n'))
    bad_zone = MINIMAL.replace('kiosk = "k1"', 'kiosk = "k1"\ntimezone = "Mars/Base"')
    assert any("IANA" in m for m in problems(bad_zone))


def test_find_line_handles_nested_tables() -> None:
    text = "a = 1\n[policy]\nx = 1\n[policy.category.red]\naction = 'x'\n"
    assert find_line(text, "policy.category.red.action") == 5
    assert find_line(text, "policy.category.red") == 4
    assert find_line(text, "policy.x") == 3
    assert find_line(text, "nowhere.x") is None


def test_secret_from_file_and_credentials_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "site.key"
    key.write_text("s3cret\n")
    assert read_secret("site.hmac_key", key, None) == b"s3cret"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("pw")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret("mqtt.password", None, "mqtt_password") == b"pw"
    with pytest.raises(SecretError, match=r"mqtt\.password: cannot read"):
        read_secret("mqtt.password", None, "missing")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(SecretError, match="CREDENTIALS_DIRECTORY is unset"):
        read_secret("mqtt.password", None, "mqtt_password")
    assert read_secret("x", None, None) is None


def test_relative_secret_path_resolves_next_to_config(tmp_path: Path) -> None:
    (tmp_path / "site.key").write_bytes(b"k" * 32)
    (tmp_path / "site.key").chmod(0o600)
    conf = tmp_path / "kiosk.toml"
    conf.write_text(MINIMAL.replace('kiosk = "k1"', 'kiosk = "k1"\nhmac_key_file = "site.key"'))
    config = load_config(conf)
    assert config.site.hmac_key() == b"k" * 32
    assert check_secrets(config) == []
    (tmp_path / "site.key").unlink()
    assert check_secrets(config) and "site.hmac_key" in check_secrets(config)[0]


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert cli.main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "[policy]\nfever_threshold_c = 30\n[leds]\ngreen = 5\n")
    assert cli.main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "policy.fever_threshold_c (line 6): got 30" in err
    assert "leds.green (line 8): unknown key" in err
    assert cli.main(["--check-config", str(bad)]) == 2
    assert cli.main(["check-config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_example_config_mentions_every_key() -> None:
    import re

    from pydantic import BaseModel

    text = (ROOT / "config" / "kiosk.example.toml").read_text()
    missing = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
            elif not re.search(rf"\b{name}\b", text):
                missing.append(prefix + name)

    walk(KioskConfig, "")
    assert missing == []
