"""Claiming the relay pin: failures name the pin and what to check; no energising pulse at claim or close.

The lgpio tests run gpiozero's real LGPIOFactory and LGPIOPin on a recording stand-in for the lgpio
module (tests/fake_lgpio.py), so every line operation the driver causes is seen at the lowest layer.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gpiozero
import gpiozero.pins
import pytest
from fake_lgpio import FakeLgpio, Sample, pi_factory_class, write_failing_lgpio
from gpiozero.pins.mock import MockFactory
from polling import wait_until

from drivers.button import ButtonError, StaffButton
from drivers.leds import LedError, StatusLeds
from drivers.pir import Pir, PirError
from drivers.relay import GateRelay, RelayError
from kiosk.cli.check import run_self_test
from kiosk.config import load_embedded
from kiosk.hardware import Emulation, Hardware

PIN = 17


@pytest.fixture
def lgpio_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeLgpio, Any]]:
    """gpiozero's LGPIOFactory (chip 0, told it is on a Pi 4) on top of a recording fake lgpio."""
    fake = FakeLgpio()
    monkeypatch.setitem(sys.modules, "lgpio", fake)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    module = importlib.import_module("gpiozero.pins.lgpio")
    factory = pi_factory_class(module.LGPIOFactory)(chip=0)
    try:
        yield fake, factory
    finally:
        factory.close()
        factory._reservations.clear()  # LocalPiFactory keeps pins and reservations at class level
        sys.modules.pop("gpiozero.pins.lgpio", None)
        if getattr(gpiozero.pins, "lgpio", None) is module:
            delattr(gpiozero.pins, "lgpio")


@pytest.fixture
def lgpio_without_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gpiozero's default factory set to lgpio, whose import fails as in a directory it cannot write.

    Returns that working directory. Nothing is faked above the `lgpio` module itself: gpiozero finds
    its lgpio factory through its entry point and imports gpiozero.pins.lgpio as on a Pi.
    """
    monkeypatch.syspath_prepend(str(write_failing_lgpio(tmp_path / "lib").parent))
    for name in ("lgpio", "gpiozero.pins.lgpio"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")
    monkeypatch.delenv("LG_WD", raising=False)
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    return workdir


def levels(samples: list[Sample]) -> list[int | None]:
    return [s.level for s in samples]


# ---- finding 1: any failure to claim the pin is the relay's own error, saying what to check ----


def test_lgpio_pipe_failure_is_a_relay_error_naming_the_pin_and_lg_wd(lgpio_without_pipe: Path) -> None:
    with pytest.raises(RelayError) as caught:
        GateRelay(PIN, active_high=False)
    message = str(caught.value)
    assert caught.value.device == f"gate relay on pin {PIN}"
    assert message.startswith(f"gate relay on pin {PIN}: cannot claim the pin: ")
    assert ".lgd-nfy" in message and str(lgpio_without_pipe) in message and "LG_WD" in message
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(("make", "error"), [
    (lambda: StaffButton(27), ButtonError),
    (lambda: Pir(4), PirError),
    (lambda: StatusLeds(green=5, red=6, amber=13), LedError),
])
def test_the_other_gpio_devices_say_the_same(lgpio_without_pipe: Path, make: Callable[[], object],
                                             error: type[Exception]) -> None:
    with pytest.raises(error, match=r"cannot claim the pins?: lgpio cannot make its notification pipe"):
        make()


def test_lgpio_line_held_elsewhere_is_a_relay_error(lgpio_factory: tuple[FakeLgpio, Any]) -> None:
    fake, factory = lgpio_factory
    fake.busy.add(PIN)
    with pytest.raises(RelayError, match=rf"pin {PIN}: cannot claim the pin: .*busy.*another program"):
        GateRelay(PIN, active_high=False, pin_factory=factory)
    fake.busy.clear()
    GateRelay(PIN, active_high=False, pin_factory=factory).close()  # the failed claim left no reservation


def test_kiosk_check_shows_a_claim_failure_as_the_gate_line(lgpio_without_pipe: Path) -> None:
    class RealGpio(Hardware):
        """Emulated camera, thermometer and speaker; GPIO through gpiozero's default factory."""

        @property
        def pin_factory(self) -> Any:
            return None

    config = load_embedded()
    results = {r.device: r for r in run_self_test(config, hardware=RealGpio(config, emulation=Emulation()))}
    gate = results["gate"]
    assert not gate.ok and gate.required
    assert gate.line.startswith(f"gate failed: gate relay on pin {PIN}: cannot claim the pin: lgpio ")
    assert "LG_WD" in gate.line and str(lgpio_without_pipe) in gate.line
    assert "LG_WD" in results["leds"].line  # the other GPIO lines say what to check too
    assert results["thermometer"].ok


# ---- finding 2: claimed at the inactive level, and still driven there after close ----


@pytest.mark.parametrize(("active_high", "inactive"), [(True, False), (False, True)])
def test_mock_pin_is_never_active_from_claim_to_after_close(
    mock_factory: MockFactory, active_high: bool, inactive: bool
) -> None:
    pin = mock_factory.pin(PIN)
    if inactive:
        pin.drive_high()  # the pull resistor to the inactive level, holding the line before the claim
    else:
        pin.drive_low()
    pin.clear_states()
    relay = GateRelay(PIN, active_high=active_high)
    assert pin.function == "output" and not relay.is_open
    relay.close()
    assert [s.state for s in pin.states] == [inactive]
    assert pin.function == "output" and pin.state is inactive  # driven, not a floating input


@pytest.mark.parametrize(("active_high", "inactive"), [(True, 0), (False, 1)])
def test_lgpio_line_is_never_active_from_claim_to_after_close(
    lgpio_factory: tuple[FakeLgpio, Any], active_high: bool, inactive: int
) -> None:
    fake, factory = lgpio_factory
    fake.pull(PIN, inactive)
    relay = GateRelay(PIN, active_high=active_high, pin_factory=factory)
    relay.close()
    history = fake.history(PIN)
    assert [s.call for s in history if s.output][:1] == ["gpio_claim_output"]
    assert levels(history) == [inactive] * len(history), history
    assert history[-1].output  # still an output after close: nothing released it
    assert ("gpio_free", PIN) not in fake.calls
    GateRelay(PIN, active_high=active_high, pin_factory=factory).close()  # reservation released
    assert levels(fake.history(PIN)) == [inactive] * len(fake.history(PIN))


@pytest.mark.parametrize(("active_high", "inactive"), [(True, 0), (False, 1)])
def test_lgpio_line_without_pull_resistor_is_claimed_straight_at_the_inactive_level(
    lgpio_factory: tuple[FakeLgpio, Any], active_high: bool, inactive: int
) -> None:
    fake, factory = lgpio_factory
    with GateRelay(PIN, active_high=active_high, pin_factory=factory):
        pass
    driven = [s for s in fake.history(PIN) if s.output]
    assert driven and levels(driven) == [inactive] * len(driven)
    assert [c for c in fake.calls if c[0] == "gpio_claim_output"] == [("gpio_claim_output", PIN, inactive, 0)]


def test_lgpio_pulse_energises_then_returns_to_the_inactive_level(
    lgpio_factory: tuple[FakeLgpio, Any],
) -> None:
    fake, factory = lgpio_factory
    fake.pull(PIN, 1)
    with GateRelay(PIN, active_high=False, pin_factory=factory) as relay:
        relay.pulse(0.05)
        assert relay.is_open
        assert wait_until(lambda: not relay.is_open)
    writes = [s.level for s in fake.history(PIN) if s.call == "gpio_write"]
    assert 0 in writes and writes[-1] == 1
    assert fake.history(PIN)[-1] == Sample("gpio_write", True, 1)
