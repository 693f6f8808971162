"""GateRelay on gpiozero's MockFactory: levels, pulse lengths, overrides and close."""

from __future__ import annotations

import math
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from polling import wait_until

from drivers.errors import DeviceError
from drivers.relay import GateRelay, RelayError

PIN = 17


def levels(pin: MockPin) -> list[bool]:
    """The pin's recorded levels, oldest first."""
    return [bool(s.state) for s in pin.states]


@pytest.mark.parametrize(
    ("active_high", "initial_value", "level"),
    [(True, False, False), (False, False, True), (True, True, True), (False, True, False)],
)
def test_initial_level_follows_board_setting(
    mock_factory: MockFactory, active_high: bool, initial_value: bool, level: bool
) -> None:
    with GateRelay(PIN, active_high=active_high, initial_value=initial_value) as relay:
        pin = mock_factory.pin(PIN)
        assert pin.function == "output"
        assert pin.state is level
        assert relay.is_open is initial_value
        assert relay.active_high is active_high


@pytest.mark.parametrize(("active_high", "inactive"), [(True, False), (False, True)])
def test_pulse_energises_for_exactly_that_long(
    mock_factory: MockFactory, active_high: bool, inactive: bool
) -> None:
    relay = GateRelay(PIN, active_high=active_high)
    pin = mock_factory.pin(PIN)
    pin.clear_states()
    started = time.monotonic()
    relay.pulse(0.2)
    assert relay.is_open  # energised before pulse() returns
    assert time.monotonic() - started < 0.05  # and it does not block
    assert wait_until(lambda: not relay.is_open)
    assert levels(pin) == [inactive, not inactive, inactive]
    pin.assert_states_and_times([(0.0, inactive), (0.0, not inactive), (0.2, inactive)])
    assert pin.states[2].timestamp == pytest.approx(0.2, abs=0.03)
    relay.close()


@pytest.mark.parametrize(
    ("after_s", "second_s", "closes_at_s"),
    [
        pytest.param(0.05, 0.15, 0.2, id="a new pulse extends the opening without a gap"),
        pytest.param(0.03, 0.03, 0.15, id="a shorter pulse does not cut the opening short"),
    ],
)
def test_a_second_pulse_during_an_opening(
    mock_factory: MockFactory, after_s: float, second_s: float, closes_at_s: float
) -> None:
    relay = GateRelay(PIN)
    pin = mock_factory.pin(PIN)
    pin.clear_states()
    relay.pulse(0.15)
    time.sleep(after_s)
    relay.pulse(second_s)
    assert wait_until(lambda: not relay.is_open)
    assert levels(pin) == [False, True, False]
    assert pin.states[2].timestamp == pytest.approx(closes_at_s, abs=0.03)
    relay.close()


@pytest.mark.parametrize("seconds", [0.0, -1.0, 30.01, math.nan, math.inf])
def test_pulse_length_is_bounded(mock_factory: MockFactory, seconds: float) -> None:
    with GateRelay(PIN) as relay:
        with pytest.raises(ValueError, match="pulse"):
            relay.pulse(seconds)
        assert not relay.is_open
        assert levels(mock_factory.pin(PIN)) == [False]


def test_hold_open_until_shut_and_ignores_pulses(mock_factory: MockFactory) -> None:
    relay = GateRelay(PIN, active_high=False)
    pin = mock_factory.pin(PIN)
    pin.clear_states()
    relay.hold_open()
    assert relay.is_open
    relay.pulse(0.05)
    time.sleep(0.1)
    assert relay.is_open  # the pulse ending did not end the hold
    relay.shut()
    assert not relay.is_open
    assert levels(pin) == [True, False, True]
    assert pin.states[2].timestamp == pytest.approx(0.1, abs=0.04)
    relay.close()


def test_shut_cancels_a_pulse(mock_factory: MockFactory) -> None:
    relay = GateRelay(PIN)
    pin = mock_factory.pin(PIN)
    relay.pulse(5)
    relay.shut()
    time.sleep(0.05)
    assert not relay.is_open
    assert pin.state is False
    relay.pulse(0.05)  # a later pulse is not extended to the cancelled deadline
    assert wait_until(lambda: not relay.is_open, timeout=0.5)
    relay.close()


@pytest.mark.parametrize(("active_high", "inactive"), [(True, False), (False, True)])
def test_close_leaves_the_gate_shut_and_is_idempotent(
    mock_factory: MockFactory, active_high: bool, inactive: bool
) -> None:
    relay = GateRelay(PIN, active_high=active_high)
    pin = mock_factory.pin(PIN)
    relay.pulse(10)
    assert pin.state is (not inactive)
    started = time.monotonic()
    relay.close()
    assert time.monotonic() - started < 1.0
    assert pin.state is inactive
    assert pin.function == "output"  # still driven inactive, not handed back as a floating input
    assert relay.closed
    relay.close()
    assert pin.state is inactive
    with pytest.raises(RelayError, match=f"pin {PIN}.*closed"):
        relay.pulse(1)
    with pytest.raises(RelayError):
        _ = relay.is_open


def test_context_manager_shuts_a_held_gate(mock_factory: MockFactory) -> None:
    with GateRelay(PIN, active_high=False) as relay:
        relay.hold_open()
        assert mock_factory.pin(PIN).state is False
    assert relay.closed
    assert mock_factory.pin(PIN).state is True
    GateRelay(PIN).close()  # the pin was released


def test_pin_in_use_is_a_device_error_naming_the_relay(mock_factory: MockFactory) -> None:
    with GateRelay(PIN), pytest.raises(RelayError) as info:
        GateRelay(PIN)
    assert isinstance(info.value, DeviceError)
    assert info.value.device == f"gate relay on pin {PIN}"


def test_explicit_pin_factory_is_used(mock_factory: MockFactory) -> None:
    other = MockFactory()
    try:
        with GateRelay(PIN, active_high=False, pin_factory=other) as relay:
            relay.hold_open()
            assert other.pin(PIN).state is False
            assert not mock_factory.pins  # the default factory was never touched
    finally:
        other.reset()
        other.close()
