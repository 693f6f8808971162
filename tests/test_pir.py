"""Pir on gpiozero's MockFactory: callbacks and waits driven by the mock pin."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.errors import DeviceError
from drivers.pir import Pir, PirError

PIN = 4
FAST = 200  # samples per second, so the smoothing queue reacts within a few ms


def test_callbacks_follow_the_pin(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(PIN)
    motion, still = threading.Event(), threading.Event()
    calls: list[str] = []
    with Pir(PIN, sample_rate=FAST) as pir:
        assert pin.pull == "down"
        assert pir.wait_for_no_motion(1.0)  # first sample taken: later edges fire callbacks
        assert not pir.motion_detected

        def on_motion() -> None:
            calls.append("motion")
            motion.set()

        def on_still() -> None:
            calls.append("still")
            still.set()

        pir.when_motion, pir.when_no_motion = on_motion, on_still
        assert pir.when_motion is on_motion
        pin.drive_high()
        assert motion.wait(1.0)
        assert pir.motion_detected
        pin.drive_low()
        assert still.wait(1.0)
        assert not pir.motion_detected
    assert calls == ["motion", "still"]


def test_cleared_callback_is_not_called(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(PIN)
    calls: list[str] = []
    with Pir(PIN, sample_rate=FAST) as pir:
        pir.when_motion = lambda: calls.append("motion")
        pir.when_motion = None
        assert pir.wait_for_no_motion(1.0)
        pin.drive_high()
        assert pir.wait_for_motion(1.0)
        time.sleep(0.02)
    assert calls == []


def test_wait_for_motion_times_out_then_sees_motion(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(PIN)
    with Pir(PIN, sample_rate=FAST) as pir:
        started = time.monotonic()
        assert pir.wait_for_motion(0.05) is False
        assert time.monotonic() - started >= 0.05
        timer = threading.Timer(0.05, pin.drive_high)
        timer.start()
        try:
            started = time.monotonic()
            assert pir.wait_for_motion(1.0) is True
            assert 0.04 <= time.monotonic() - started < 0.5
        finally:
            timer.cancel()
        pin.drive_low()
        assert pir.wait_for_no_motion(1.0) is True


def test_pull_up_sensor_reports_motion_on_a_low_pin(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(PIN)
    with Pir(PIN, pull_up=True, sample_rate=FAST) as pir:
        assert pin.pull == "up" and pin.state is True
        assert pir.wait_for_no_motion(1.0)
        pin.drive_low()
        assert pir.wait_for_motion(1.0)


def test_smoothing_ignores_a_blip_shorter_than_the_queue(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(PIN)
    calls: list[str] = []
    with Pir(PIN, queue_len=20, sample_rate=FAST, threshold=0.5) as pir:
        pir.when_motion = lambda: calls.append("motion")
        assert pir.wait_for_no_motion(1.0)  # the 20-sample (100 ms) queue is full of "still"
        pin.drive_high()
        time.sleep(0.02)  # ~4 of 20 samples high: mean 0.2 < 0.5
        pin.drive_low()
        time.sleep(0.05)
        assert calls == []
        pin.drive_high()
        assert pir.wait_for_motion(1.0)
    assert calls == ["motion"]


def test_a_failing_callback_is_logged_and_sampling_goes_on(
    mock_factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pin = mock_factory.pin(PIN)
    still = threading.Event()

    def explode() -> None:
        raise RuntimeError("boom")

    with Pir(PIN, sample_rate=FAST) as pir, caplog.at_level(logging.ERROR, logger="drivers.pir"):
        pir.when_motion = explode
        pir.when_no_motion = still.set
        assert pir.wait_for_no_motion(1.0)
        pin.drive_high()
        assert pir.wait_for_motion(1.0)
        pin.drive_low()
        assert still.wait(1.0)
    assert "when_motion callback failed" in caplog.text
    assert f"pin {PIN}" in caplog.text


@pytest.mark.parametrize(
    "options", [{"queue_len": 0}, {"sample_rate": 0}, {"threshold": 1.5}, {"threshold": -0.1}]
)
def test_bad_options_are_rejected(mock_factory: MockFactory, options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Pir(PIN, **options)  # type: ignore[arg-type]
    assert not mock_factory.pins


def test_close_is_idempotent_and_releases_the_pin(mock_factory: MockFactory) -> None:
    baseline = threading.active_count()
    pir = Pir(PIN, sample_rate=FAST)
    assert threading.active_count() == baseline + 1  # the sampling thread
    pir.close()
    pir.close()
    assert pir.closed
    assert threading.active_count() == baseline
    with pytest.raises(PirError, match=f"pin {PIN}.*closed"):
        _ = pir.motion_detected
    with pytest.raises(PirError):
        pir.wait_for_motion(0.01)
    Pir(PIN, sample_rate=FAST).close()


def test_pin_in_use_is_a_device_error(mock_factory: MockFactory) -> None:
    with Pir(PIN), pytest.raises(DeviceError, match="pir on pin 4"):
        Pir(PIN)
