"""StatusLeds on gpiozero's MockFactory: pattern data, pin histories, clean switching and close."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from polling import wait_until

from drivers.leds import FAULT_FLASHES, PATTERNS, FaultClass, LedError, Pattern, StatusLeds, fault_pattern

GREEN, RED, AMBER = 5, 6, 13


def edges(pin: MockPin) -> list[tuple[float, bool]]:
    """(seconds since the history began, new level) for every change after the first entry."""
    out, t = [], 0.0
    for state in pin.states[1:]:
        t += state.timestamp
        out.append((t, bool(state.state)))
    return out


def rises(pin: MockPin) -> list[float]:
    """Times the pin went high."""
    return [t for t, level in edges(pin) if level]


def on_durations(pin: MockPin) -> list[float]:
    """How long each completed high period lasted."""
    changes = edges(pin)
    return [t2 - t1 for (t1, l1), (t2, l2) in pairwise(changes) if l1 and not l2]


def groups(times: list[float], gap: float) -> list[int]:
    """Sizes of runs of `times` whose neighbours are closer than `gap`."""
    sizes: list[int] = []
    last = None
    for t in times:
        if last is None or t - last >= gap:
            sizes.append(0)
        sizes[-1] += 1
        last = t
    return sizes


def pins(factory: MockFactory, *numbers: int) -> list[MockPin]:
    """The mock pins for `numbers`, histories cleared."""
    out = [factory.pin(n) for n in numbers]
    for pin in out:
        pin.clear_states()
    return out


@pytest.fixture
def leds(mock_factory: MockFactory) -> Iterator[StatusLeds]:
    """StatusLeds on the default pins with a fast 10 ms step."""
    with StatusLeds(green=GREEN, red=RED, amber=AMBER, step_s=0.01) as device:
        yield device


def test_every_fault_class_has_its_own_amber_blink_code() -> None:
    assert {kind.value for kind in FaultClass} >= {"thermometer", "camera", "broker", "gate"}
    codes = {}
    for kind in FaultClass:
        pattern = PATTERNS[fault_pattern(kind)]
        assert pattern.green == pattern.red == "."
        codes[kind] = len(re.findall("#+", pattern.amber))
        assert codes[kind] == FAULT_FLASHES[kind]
        assert pattern.amber.endswith("." * 12)  # the pause that separates repeats
    assert sorted(codes.values()) == [1, 2, 3, 4]


def test_pattern_table_is_consistent() -> None:
    assert {"off", "idle", "allow", "deny", "attention"} <= PATTERNS.keys()
    assert PATTERNS["allow"].steps() == [(True, False, False)]
    assert PATTERNS["deny"].steps() == [(False, True, False)]
    idle = PATTERNS["idle"].steps()
    assert len(idle) == 20 and sum(g for g, _, _ in idle) == 2  # 0.2 s in 2 s at 0.1 s steps
    assert len({tuple(p.steps()) for p in PATTERNS.values()}) == len(PATTERNS)


@pytest.mark.parametrize("bad", [{"green": "#.", "red": "#.."}, {"amber": "#x"}, {"red": ""}])
def test_malformed_pattern_is_rejected(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="track"):
        Pattern(**bad)


def test_starts_dark_and_steady_patterns_light_one_colour(mock_factory: MockFactory) -> None:
    with StatusLeds(green=GREEN, red=RED, amber=AMBER) as leds:
        green, red, amber = (mock_factory.pin(n) for n in (GREEN, RED, AMBER))
        assert leds.pattern == "off"
        assert (green.state, red.state, amber.state) == (False, False, False)
        leds.allow()
        assert (leds.pattern, green.state, red.state, amber.state) == ("allow", True, False, False)
        leds.deny()
        assert (leds.pattern, green.state, red.state, amber.state) == ("deny", False, True, False)
        leds.off()
        assert (leds.pattern, green.state, red.state, amber.state) == ("off", False, False, False)
        assert [s.state for s in green.states] == [False, True, False]


def test_active_low_inverts_levels(mock_factory: MockFactory) -> None:
    with StatusLeds(green=GREEN, red=RED, amber=AMBER, active_high=False) as leds:
        green, red = mock_factory.pin(GREEN), mock_factory.pin(RED)
        assert (green.state, red.state) == (True, True)
        leds.allow()
        assert (green.state, red.state) == (False, True)
    assert (green.state, red.state) == (True, True)


def test_idle_is_a_short_green_flash_every_20_steps(mock_factory: MockFactory) -> None:
    with StatusLeds(green=GREEN, red=RED, amber=AMBER, step_s=0.02) as leds:
        green, red, amber = pins(mock_factory, GREEN, RED, AMBER)
        leds.idle()
        time.sleep(0.5)  # two heartbeats: at 0 and 0.4 s
        leds.off()
    up = rises(green)
    assert len(up) == 2
    assert up[0] == pytest.approx(0.0, abs=0.02)
    assert up[1] - up[0] == pytest.approx(0.4, abs=0.04)
    assert on_durations(green) == [pytest.approx(0.04, abs=0.02)] * 2
    assert len(red.states) == len(amber.states) == 1  # never touched


def test_fault_blink_counts_differ_per_class(mock_factory: MockFactory) -> None:
    wiring = {
        FaultClass.THERMOMETER: (24, 25, 26),
        FaultClass.CAMERA: (5, 6, 13),
        FaultClass.BROKER: (16, 19, 20),
        FaultClass.GATE: (21, 22, 23),
    }
    boards = {kind: StatusLeds(green=g, red=r, amber=a, step_s=0.01) for kind, (g, r, a) in wiring.items()}
    history = {kind: pins(mock_factory, *wiring[kind]) for kind in wiring}
    try:
        for kind, board in boards.items():
            board.fault(kind)
            assert board.pattern == f"fault:{kind.value}"
        time.sleep(0.45)  # the longest code (gate) repeats after 36 steps = 0.36 s
    finally:
        for board in boards.values():
            board.close()
    for kind, (green, red, amber) in history.items():
        # Flashes within a code start 6 steps apart; codes start >= 18 steps apart.
        sizes = groups(rises(amber), gap=0.12)
        assert len(sizes) >= 2, kind
        assert sizes[0] == FAULT_FLASHES[kind], kind
        first_code = on_durations(amber)[: FAULT_FLASHES[kind]]  # later flashes may be cut by close
        assert first_code == [pytest.approx(0.03, abs=0.02)] * FAULT_FLASHES[kind], kind
        assert not any(s.state for s in green.states + red.states), kind
        assert amber.state is False  # close left it dark


def test_attention_blinks_amber(mock_factory: MockFactory) -> None:
    with StatusLeds(green=GREEN, red=RED, amber=AMBER, step_s=0.01) as leds:
        (amber,) = pins(mock_factory, AMBER)
        leds.attention()
        time.sleep(0.25)
    up = rises(amber)
    assert len(up) >= 2
    assert up[1] - up[0] == pytest.approx(0.1, abs=0.03)
    assert on_durations(amber)[0] == pytest.approx(0.05, abs=0.02)


def test_switching_stops_the_previous_pattern_cleanly(mock_factory: MockFactory) -> None:
    baseline = threading.active_count()
    with StatusLeds(green=GREEN, red=RED, amber=AMBER, step_s=0.05) as leds:
        green, red, amber = pins(mock_factory, GREEN, RED, AMBER)
        leds.idle()
        assert wait_until(lambda: green.state is True)
        assert threading.active_count() == baseline + 1
        leds.fault(FaultClass.CAMERA)  # mid-flash: green must not stay lit
        assert green.state is False
        assert wait_until(lambda: amber.state is True)
        assert threading.active_count() == baseline + 1  # replaced, not added
        leds.deny()
        assert (green.state, red.state, amber.state) == (False, True, False)
        assert threading.active_count() == baseline
        changes = len(amber.states)
        time.sleep(0.12)
        assert len(amber.states) == changes  # nothing still toggling amber
    assert threading.active_count() == baseline


def test_showing_the_current_pattern_again_does_not_restart_it(
    leds: StatusLeds, mock_factory: MockFactory
) -> None:
    (green,) = pins(mock_factory, GREEN)
    leds.idle()
    time.sleep(0.05)  # past the 20 ms flash
    leds.idle()
    time.sleep(0.03)
    assert len(rises(green)) == 1
    assert leds.pattern == "idle"


def test_unknown_pattern_and_bad_step(leds: StatusLeds) -> None:
    with pytest.raises(ValueError, match="unknown LED pattern"):
        leds.show("disco")
    assert leds.pattern == "off"
    with pytest.raises(ValueError, match="step_s"):
        StatusLeds(green=17, red=27, amber=22, step_s=0)


def test_close_darkens_all_and_is_idempotent(mock_factory: MockFactory) -> None:
    baseline = threading.active_count()
    leds = StatusLeds(green=GREEN, red=RED, amber=AMBER, step_s=0.01)
    leds.attention()
    assert wait_until(lambda: mock_factory.pin(AMBER).state is True)
    leds.close()
    leds.close()
    assert leds.closed and leds.pattern == "off"
    assert [mock_factory.pin(n).state for n in (GREEN, RED, AMBER)] == [False, False, False]
    assert threading.active_count() == baseline
    with pytest.raises(LedError, match="closed"):
        leds.idle()
    StatusLeds(green=GREEN, red=RED, amber=AMBER).close()  # the pins were released


def test_pin_clash_is_a_device_error(mock_factory: MockFactory) -> None:
    with pytest.raises(LedError, match="status leds"):
        StatusLeds(green=GREEN, red=GREEN, amber=AMBER)
