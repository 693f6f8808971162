"""StaffButton on gpiozero's MockFactory: short-press acknowledge versus hold-to-open."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from polling import wait_until

from drivers.button import ButtonError, StaffButton

PIN = 27
HOLD_S = 0.1


class Recorder:
    """Counts the button's two gestures and notes whether the button was down at hold time."""

    def __init__(self, button: StaffButton) -> None:
        self.acks = 0
        self.holds = 0
        self.pressed_at_hold: list[bool] = []
        self.held = threading.Event()
        self._button = button
        button.when_acknowledge = self._ack
        button.when_hold_open = self._hold

    def _ack(self) -> None:
        self.acks += 1

    def _hold(self) -> None:
        self.pressed_at_hold.append(self._button.is_pressed)
        self.holds += 1
        self.held.set()


@pytest.fixture
def button(mock_factory: MockFactory) -> Iterator[StaffButton]:
    """A pull-up StaffButton on PIN with a short hold time."""
    with StaffButton(PIN, hold_s=HOLD_S) as device:
        yield device


@pytest.fixture
def pin(mock_factory: MockFactory, button: StaffButton) -> MockPin:
    """The button's mock pin (pulled up: pressing drives it low), history cleared."""
    pin = mock_factory.pin(PIN)
    pin.clear_states()
    return pin


def test_idle_pin_is_pulled_up(button: StaffButton, pin: MockPin) -> None:
    assert pin.pull == "up" and pin.state is True
    assert not button.is_pressed
    assert button.hold_s == HOLD_S


def test_short_press_acknowledges_on_release(button: StaffButton, pin: MockPin) -> None:
    seen = Recorder(button)
    pin.drive_low()
    assert button.is_pressed
    time.sleep(0.03)
    assert seen.acks == 0  # not on press
    pin.drive_high()
    assert seen.acks == 1
    time.sleep(HOLD_S + 0.05)
    assert seen.holds == 0
    assert [s.state for s in pin.states] == [True, False, True]


def test_hold_opens_once_while_held_and_never_acknowledges(button: StaffButton, pin: MockPin) -> None:
    seen = Recorder(button)
    pressed = time.monotonic()
    pin.drive_low()
    assert seen.held.wait(1.0)
    assert time.monotonic() - pressed == pytest.approx(HOLD_S, abs=0.08)
    assert seen.pressed_at_hold == [True]  # fired while still held
    time.sleep(HOLD_S + 0.05)  # keep holding: no repeat
    pin.drive_high()
    assert (seen.holds, seen.acks) == (1, 0)


def test_gestures_after_a_hold_start_afresh(button: StaffButton, pin: MockPin) -> None:
    seen = Recorder(button)
    pin.drive_low()
    assert seen.held.wait(1.0)
    pin.drive_high()
    pin.drive_low()
    time.sleep(0.02)
    pin.drive_high()
    seen.held.clear()
    pin.drive_low()
    assert seen.held.wait(1.0)
    pin.drive_high()
    assert (seen.holds, seen.acks) == (2, 1)


def test_release_winning_the_race_against_the_hold_timer(button: StaffButton, pin: MockPin) -> None:
    seen = Recorder(button)
    pin.drive_low()
    pin.drive_high()
    button._on_held()  # a hold timer that expired just as the button came up
    assert (seen.holds, seen.acks) == (0, 1)


def test_pull_down_wiring_presses_high(mock_factory: MockFactory) -> None:
    with StaffButton(PIN, hold_s=HOLD_S, pull_up=False, bounce_s=0.01) as button:
        seen = Recorder(button)
        pin = mock_factory.pin(PIN)
        assert pin.pull == "down" and pin.state is False
        pin.drive_high()
        pin.drive_low()
        assert seen.acks == 1


def test_a_failing_callback_is_logged_and_holds_keep_working(
    button: StaffButton, pin: MockPin, caplog: pytest.LogCaptureFixture
) -> None:
    held = threading.Event()
    failures = [RuntimeError("boom")]

    def hold() -> None:
        if failures:
            raise failures.pop()
        held.set()

    button.when_hold_open = hold
    with caplog.at_level(logging.ERROR, logger="drivers.button"):
        pin.drive_low()
        assert wait_until(lambda: not failures)
        pin.drive_high()
        pin.drive_low()
        assert held.wait(1.0)  # gpiozero's hold thread survived the first failure
        pin.drive_high()
    assert "when_hold_open callback failed" in caplog.text


@pytest.mark.parametrize("options", [{"hold_s": 0}, {"hold_s": -1}, {"bounce_s": 0}])
def test_bad_options_are_rejected(mock_factory: MockFactory, options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StaffButton(PIN, **options)  # type: ignore[arg-type]
    assert not mock_factory.pins


def test_close_is_idempotent_and_silences_callbacks(mock_factory: MockFactory) -> None:
    baseline = threading.active_count()
    button = StaffButton(PIN, hold_s=HOLD_S)
    seen = Recorder(button)
    assert threading.active_count() == baseline + 1  # gpiozero's hold thread
    button.close()
    button.close()
    assert button.closed
    assert threading.active_count() == baseline
    assert button.when_acknowledge is None and button.when_hold_open is None
    with pytest.raises(ButtonError, match=f"staff button on pin {PIN}.*closed"):
        _ = button.is_pressed
    with StaffButton(PIN) as again:  # the pin was released
        mock_factory.pin(PIN).drive_low()
        assert again.is_pressed
    assert seen.acks == seen.holds == 0


def test_pin_in_use_is_a_device_error(button: StaffButton) -> None:
    with pytest.raises(ButtonError, match=f"staff button on pin {PIN}"):
        StaffButton(PIN)
