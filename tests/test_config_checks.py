"""What `kiosk check-config` and config loading catch before the daemon starts: missing files, unusable
health-platform URLs, quoted numbers and booleans, reserved and shared GPIO pins; and the scan-codes
default."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint.reasons import Reason
from checkpoint.tomlconfig import ConfigError
from kiosk.cli import main as cli
from kiosk.config import load_config, parse_config
from kiosk.sim.scenario import load_scenario
from office.config import OfficeConfig, parse_collector_config

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = 'hardware = "emulated"\n[site]\nid = "s1"\nkiosk = "k1"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def one_problem(text: str) -> str:
    (problem,) = problems(text)
    return problem


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(["check-config", str(path)])
    return code, capsys.readouterr().err.strip().splitlines()


# --- files and directories the config names -------------------------------------------------------------

MISSING = [
    ("passes", "keys_dir", "dir"),
    ("commands", "keys_dir", "dir"),
    ("health", "token_keys_dir", "dir"),
    ("health", "dcc_trust_dir", "dir"),
    ("mqtt", "ca_file", "file"),
]


@pytest.mark.parametrize(("section", "key", "kind"), MISSING, ids=[f"{s}.{k}" for s, k, _ in MISSING])
def test_check_config_finds_a_missing_key_directory_or_ca_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, key: str, kind: str) -> None:
    extra = "tls = true\n" if section == "mqtt" else ""
    conf = tmp_path / "kiosk.toml"
    conf.write_text(MINIMAL + f'[{section}]\n{extra}{key} = "absent"\n')
    code, lines = check_config(conf, capsys)
    assert code == 2
    (line,) = lines
    assert line.startswith(f"{conf}: {section}.{key}")
    assert str(tmp_path / "absent") in line and "does not exist" in line
    if kind == "dir":
        (tmp_path / "absent").write_text("a file, not a directory")
        code, (line,) = check_config(conf, capsys)
        assert code == 2 and "not a directory" in line
        (tmp_path / "absent").unlink()
        (tmp_path / "absent").mkdir()
    else:
        (tmp_path / "absent").write_text("-----BEGIN CERTIFICATE-----\n")
    assert check_config(conf, capsys) == (0, [])


# --- the health platform's URL ---------------------------------------------------------------------------

def health(url: str, extra: str = "") -> str:
    return MINIMAL + f'[health]\nproviders = ["token", "http"]\nhttp_url = "{url}"\n{extra}'


def test_a_url_with_credentials_is_a_config_error_that_does_not_echo_them() -> None:
    message = one_problem(health("https://kiosk:hunter2@health.example.gov/api/v1/verify"))
    assert message.startswith("health.http_url (line 7)")
    assert "hunter2" not in message
    assert "http_token" in message


def test_verify_with_a_credentials_url_exits_2_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "kiosk.toml"
    conf.write_text(health("https://kiosk:hunter2@health.example.gov/api/v1/verify"))
    assert cli.main(["verify", "hello", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "health.http_url" in err and "hunter2" not in err
    assert check_config(conf, capsys)[0] == 2


@pytest.mark.parametrize("url", ["http://health.example.gov/api/v1/verify", "http://127.0.0.1:8080/v1/check"])
def test_plain_http_needs_allow_insecure_http(url: str) -> None:
    message = one_problem(health(url))
    assert message.startswith("health.http_url (line 7)")
    assert "https://" in message and "health.allow_insecure_http = true" in message
    config = parse_config(health(url, "allow_insecure_http = true\n"))
    assert config.health.http_url == url and config.health.allow_insecure_http


def test_a_port_out_of_range_is_a_config_error() -> None:
    message = one_problem(health("https://health.example.gov:99999/api/v1/verify"))
    assert message.startswith("health.http_url (line 7)") and "https://" in message


def test_a_token_the_provider_would_refuse_is_found_by_check_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("two words\n")
    conf = tmp_path / "kiosk.toml"
    conf.write_text(health("https://health.example.gov/api/v1/verify", 'http_token_file = "token"\n'))
    code, (line,) = check_config(conf, capsys)
    assert code == 2 and line.startswith(f"{conf}: health.http_token: expected printable ASCII")
    assert cli.main(["verify", "hello", "--config", str(conf)]) == 2
    assert "health.http_token" in capsys.readouterr().err


def test_https_needs_no_permission() -> None:
    config = parse_config(health("https://health.example.gov/api/v1/verify"))
    assert not config.health.allow_insecure_http


# --- strict types ----------------------------------------------------------------------------------------

KIOSK_QUOTED = [
    ("gate", "relay_pin", '"17"'),
    ("gate", "active_high", '"yes"'),
    ("gate", "active_high", "1"),
    ("gate", "relay_pulse_s", '"1.5"'),
    ("leds", "active_high", '"true"'),
    ("camera", "fps", "15.0"),
    ("camera", "loop", '"true"'),
    ("thermometer", "address", '"0x5A"'),
    ("thermometer", "required", "0"),
    ("pir", "enabled", '"false"'),
    ("button", "hold_s", '"2"'),
    ("voice", "speed_wpm", '"150"'),
    ("mqtt", "port", '"1883"'),
    ("mqtt", "tls", '"true"'),
    ("policy", "fever_threshold_c", '"37.3"'),
    ("policy.household", "max_exits_per_day", '"2"'),
    ("passes", "clock_skew_s", '"60"'),
    ("health", "http_scan_codes", '"false"'),
    ("storage", "backlog_alert", '"500"'),
]


@pytest.mark.parametrize(("section", "key", "value"), KIOSK_QUOTED,
                         ids=[f"{s}.{k}={v}" for s, k, v in KIOSK_QUOTED])
def test_kiosk_config_refuses_quoted_numbers_and_booleans(section: str, key: str, value: str) -> None:
    message = one_problem(MINIMAL + f"[{section}]\n{key} = {value}\n")
    assert message.startswith(f"{section}.{key} (line 6): got ")
    assert "\n" not in message and len(message) < 200


OFFICE_QUOTED = [
    ("broker", "port", '"1883"'),
    ("broker", "tls", '"true"'),
    ("broker", "keepalive_s", "30.0"),
    ("store", "kind", "1"),
    ("ingest", "batch_size", '"500"'),
    ("ingest", "shared", '"yes"'),
    ("report", "publish", '"no"'),
    ("retention", "days", '"28"'),
    ("registry", "absent_days", '"7"'),
]


@pytest.mark.parametrize(("section", "key", "value"), OFFICE_QUOTED,
                         ids=[f"{s}.{k}={v}" for s, k, v in OFFICE_QUOTED])
def test_office_config_refuses_quoted_numbers_and_booleans(section: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_collector_config(f"[{section}]\n{key} = {value}\n")
    (message,) = info.value.problems
    assert message.startswith(f"{section}.{key} (line 2): got ")


def test_ints_still_fill_float_fields_and_strings_path_fields(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + "[gate]\nrelay_pulse_s = 2\n[policy]\nfever_threshold_c = 38\n"
                          '[thermometer]\nsample_interval_s = 0\n[storage]\nstate_dir = "state"\n'
                          '[voice.files]\ngreet = "greet.wav"\n', base_dir=tmp_path)
    assert config.gate.relay_pulse_s == 2.0 and isinstance(config.gate.relay_pulse_s, float)
    assert config.policy.fever_threshold_c == 38.0
    assert config.storage.state_dir == tmp_path / "state"
    assert config.voice.files["greet"] == tmp_path / "greet.wav"
    office = parse_collector_config('[store]\npath = "office.sqlite"\n[report]\nout_dir = "reports"\n',
                                    base_dir=tmp_path)
    assert office.store.path == tmp_path / "office.sqlite" and office.report.out_dir == tmp_path / "reports"
    built = OfficeConfig.model_validate({"store": {"path": str(tmp_path / "o.sqlite")}})  # as the simulator
    assert built.store.path == tmp_path / "o.sqlite"


def test_scenarios_still_name_reason_codes_as_strings() -> None:
    scenario = load_scenario(None)
    reasons = [r for p in scenario.person for r in p.expect_reasons or []]
    assert reasons and all(isinstance(r, Reason) for r in reasons)


# --- GPIO pins -------------------------------------------------------------------------------------------

PIN_KEYS = [("gate", "relay_pin"), ("leds", "green_pin"), ("leds", "red_pin"), ("leds", "amber_pin"),
            ("pir", "pin"), ("button", "pin")]


@pytest.mark.parametrize("pin", [0, 1, 2, 3])
@pytest.mark.parametrize(("section", "key"), PIN_KEYS, ids=[f"{s}.{k}" for s, k in PIN_KEYS])
def test_reserved_gpio_pins_are_refused(section: str, key: str, pin: int) -> None:
    message = one_problem(MINIMAL + f"[{section}]\n{key} = {pin}\n")
    assert message.startswith(f"{section}.{key} (line 6): got {pin}; expected")
    assert "EEPROM" in message and "I2C" in message


def test_gpio_4_and_up_is_fine() -> None:
    assert parse_config(MINIMAL + "[pir]\npin = 4\n[button]\npin = 26\n").button.pin == 26


@pytest.mark.parametrize(("extra", "first", "second", "pin"), [
    ("[gate]\nrelay_pin = 5\n", "gate.relay_pin", "leds.green_pin", 5),
    ("[leds]\namber_pin = 6\n", "leds.red_pin", "leds.amber_pin", 6),
    ("[button]\npin = 4\n", "pir.pin", "button.pin", 4),
])
def test_two_devices_on_one_pin_is_one_short_line(extra: str, first: str, second: str, pin: int) -> None:
    message = one_problem(MINIMAL + extra)
    assert first in message and second in message and f"GPIO {pin}" in message
    assert "\n" not in message and len(message) < 160, message
    assert "{" not in message


# --- unrecognised QR codes stay on the kiosk --------------------------------------------------------------

def test_unrecognised_codes_are_not_sent_to_the_platform_by_default() -> None:
    assert parse_config(MINIMAL).health.http_scan_codes is False
    example = load_config(ROOT / "config" / "kiosk.example.toml")
    assert example.health.http_scan_codes is False
