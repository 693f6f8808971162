"""`kiosk check` and `kiosk simulate` on the emulated hardware, including failing devices."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from drivers.relay import GateRelay
from drivers.voice import SILENCE_KEY, AplaySink, AudioSink
from kiosk import sim
from kiosk.cli import main as cli
from kiosk.cli.check import run_self_test
from kiosk.config import KioskConfig, embedded_config_text, load_config, load_embedded
from kiosk.hardware import Emulation, Hardware
from kiosk.mqtt.local_broker import LocalBroker, free_port

FRAMES = Path(sim.__file__).parent / "data" / "frames"


def sim_config(tmp_path: Path, **replace: str) -> Path:
    """The embedded simulation config with its paths in tmp_path and `old=new` text replacements."""
    text = embedded_config_text()
    text = text.replace('path = "frames"', f'path = "{FRAMES}"')
    text = text.replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "state"))
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def lines(config: KioskConfig, hardware: Hardware | None = None) -> dict[str, str]:
    return {r.device: r.line for r in run_self_test(config, hardware=hardware)}


def test_simulation_config_checks_every_device_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--simulate"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "camera ok 640x480@15"
    assert out[1] == "thermometer ok ambient 21.3 °C"
    assert out[2:6] == ["gate ok", "leds ok", "pir ok no motion", "button ok"]
    assert out[6].startswith("voice ok ") and "prompts" in out[6]
    assert out[7].startswith("broker ok 127.0.0.1:") and out[7].endswith("(local)")


def test_thermometer_nack_fails_the_check_and_names_the_device() -> None:
    config = load_embedded()
    hardware = Hardware(config, emulation=Emulation())
    assert hardware.emulation is not None and hardware.emulation.chip is not None
    hardware.emulation.chip.inject_nack(50)
    results = {r.device: r for r in run_self_test(config, hardware=hardware)}
    thermometer = results["thermometer"]
    assert not thermometer.ok and thermometer.required
    assert thermometer.line.startswith("thermometer failed: ")
    assert "mlx90614@0x5a" in thermometer.line
    assert results["gate"].ok and results["camera"].ok


def test_missing_camera_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sim_config(tmp_path)
    path.write_text(path.read_text().replace(str(FRAMES), str(tmp_path / "no-such-dir")))
    assert cli.main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "camera failed: " in out and "no such file or directory" in out
    assert "gate ok" in out


def test_unreachable_optional_broker_does_not_fail_the_check(tmp_path: Path) -> None:
    port = free_port()
    path = sim_config(tmp_path, **{
        "port = 0            # 0 with local_broker: pick a free loopback port": f"port = {port}",
        "local_broker = true": "local_broker = false\nconnect_timeout_s = 1",
    })
    results = {r.device: r for r in run_self_test(load_config(path))}
    assert results["broker"].line.startswith(f"broker unreachable: 127.0.0.1:{port}")
    assert results["broker"].line.endswith("(optional)")
    assert cli.main(["check", "--config", str(path)]) == 0


def test_required_broker_unreachable_exits_1(tmp_path: Path) -> None:
    path = sim_config(tmp_path, **{
        "port = 0            # 0 with local_broker: pick a free loopback port": f"port = {free_port()}",
        "local_broker = true": "local_broker = false\nrequired = true\nconnect_timeout_s = 1",
    })
    assert cli.main(["check", "--config", str(path)]) == 1


def test_external_broker_reported_with_its_address(tmp_path: Path, mqtt_broker: LocalBroker) -> None:
    path = sim_config(tmp_path, **{
        "port = 0            # 0 with local_broker: pick a free loopback port": f"port = {mqtt_broker.port}",
        "local_broker = true": "local_broker = false",
    })
    assert lines(load_config(path))["broker"] == f"broker ok 127.0.0.1:{mqtt_broker.port}"


def test_disabled_devices_say_so(tmp_path: Path) -> None:
    path = sim_config(
        tmp_path, **{"[pir]\npin = 4": "[pir]\nenabled = false", "[button]\n": "[button]\nenabled = false\n"}
    )
    found = lines(load_config(path))
    assert found["pir"] == "pir disabled"
    assert found["button"] == "button disabled"


def stand_in_aplay(tmp_path: Path) -> str:
    """An aplay that behaves as aplay does on a Pi without a sound card: ALSA's lines, then exit 1."""
    path = tmp_path / "aplay"
    path.write_text(
        "#!/bin/sh\n"
        "echo \"ALSA lib confmisc.c:855:(parse_card) cannot find card '0'\" >&2\n"
        "echo 'ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default' >&2\n"
        "echo 'aplay: main:831: audio open error: No such file or directory' >&2\n"
        "exit 1\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


class NoSoundCard(Hardware):
    """Emulated devices, except that the voice plays through aplay on a Pi with no sound card."""

    aplay = "aplay"

    def audio_sink(self) -> AudioSink:
        return AplaySink(device=self.config.voice.device, aplay=self.aplay)


def test_voice_check_plays_silence_on_the_emulated_sink() -> None:
    config = load_embedded()
    hardware = Hardware(config, emulation=Emulation())
    assert hardware.emulation is not None
    voice = {r.device: r for r in run_self_test(config, hardware=hardware)}["voice"]
    assert voice.ok and voice.line.startswith("voice ok ")
    assert hardware.emulation.sink.said() == [SILENCE_KEY]


@pytest.mark.parametrize("required", [False, True])
def test_voice_check_fails_when_the_audio_device_cannot_be_opened(tmp_path: Path, required: bool) -> None:
    path = sim_config(tmp_path, **{"[voice]\n": f"[voice]\nrequired = {str(required).lower()}\n"})
    config = load_config(path)
    hardware = NoSoundCard(config, emulation=Emulation())
    hardware.aplay = stand_in_aplay(tmp_path)
    voice = {r.device: r for r in run_self_test(config, hardware=hardware)}["voice"]
    assert not voice.ok and voice.required is required
    assert voice.line.startswith("voice failed: ")
    assert "'default'" in voice.line and "audio open error: No such file or directory" in voice.line
    assert "\n" not in voice.line
    assert voice.line.endswith("(optional)") is not required



class RelayOnAtStart(Hardware):
    """Emulated hardware whose relay comes up energised, as a wrong `active_high` would make it."""

    def relay(self) -> GateRelay:
        cfg = self.config.gate
        return GateRelay(
            cfg.relay_pin, active_high=cfg.active_high, initial_value=True, pin_factory=self.pin_factory
        )


def test_a_relay_energised_at_start_is_reported_in_plain_words() -> None:
    config = load_embedded()
    gate = {r.device: r for r in run_self_test(config, hardware=RelayOnAtStart(config))}["gate"]
    assert gate.line == "gate failed: relay energised at start; check active_high and the relay board"
