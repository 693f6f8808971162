"""`kiosk simulate`: a short scripted visit that drives every emulated device through its real driver."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from drivers.camera import Camera
from kiosk.config import KioskConfig
from kiosk.hardware import Emulation, Hardware

FOREHEAD_NORMAL_C = 34.9
FOREHEAD_FEVER_C = 36.6  # forehead skin reads ~1.5-2 °C below body temperature
SKIN_TO_BODY_C = 2.0  # placeholder offset until the calibrated compensation (issue 4)


class _Log:
    def __init__(self, out: Callable[[str], None]) -> None:
        self._t0 = time.monotonic()
        self._out = out

    def __call__(self, message: str) -> None:
        self._out(f"t+{time.monotonic() - self._t0:5.2f}s  {message}")


def run_simulation(
    config: KioskConfig, *, emulation: Emulation | None = None, out: Callable[[str], None] = print
) -> int:
    """Play two visitors and a staff override on the emulated devices; 0 when every step did its job."""
    emulation = emulation or Emulation(realtime_camera=False)
    hw = Hardware(config, emulation=emulation)
    assert hw.emulation is not None and hw.emulation.chip is not None
    chip, pins = hw.emulation.chip, hw.emulation.pin_factory
    log = _Log(out)
    failures: list[str] = []
    pulses: list[str] = []

    with ExitStack() as stack:
        relay = stack.enter_context(hw.relay())
        leds = stack.enter_context(hw.leds())
        voice = stack.enter_context(hw.voice())
        voice.prepare()  # render every prompt up front, as the daemon does at start
        sensor = stack.enter_context(hw.thermometer())
        pir = hw.pir()
        button = hw.button()
        if pir is not None:
            stack.enter_context(pir)
            time.sleep(3 / config.pir.sample_rate)  # let its sampling settle, as a real PIR warms up
        if button is not None:
            stack.enter_context(button)
        leds.idle()
        log(f"idle: leds {leds.pattern}, gate {'open' if relay.is_open else 'shut'}")

        greeted = threading.Event()
        if pir is not None:
            def greet() -> None:
                voice.say("greet")
                greeted.set()
            pir.when_motion = greet
        if button is not None:
            def hold_open() -> None:
                relay.pulse(config.gate.relay_pulse_s)
                pulses.append("staff")
                voice.say("override")
            button.when_hold_open = hold_open

        def visit(name: str, forehead_c: float) -> None:
            if pir is not None:
                greeted.clear()
                pins.pin(config.pir.pin).drive_high()
                if not greeted.wait(2.0):
                    failures.append(f"{name}: no greeting on motion")
                voice.wait_idle(5.0)
                log(f"{name}: motion on the PIR → voice 'greet'")
            frames = _read_frames(hw, count=config.camera.fps)
            log(f"{name}: camera gave {frames} frames")
            if frames < config.camera.fps:
                failures.append(f"{name}: camera gave {frames} of {config.camera.fps} frames")
            voice.say("measure")
            voice.wait_idle(5.0)
            chip.object_c = forehead_c
            samples = [sensor.object_c for _ in range(config.thermometer.samples)]
            skin_c = statistics.median(samples)
            body_c = skin_c + SKIN_TO_BODY_C
            ambient_c = sensor.ambient_c
            log(f"{name}: forehead {skin_c:.1f} °C (ambient {ambient_c:.1f} °C) → body ≈ {body_c:.1f} °C")
            if body_c < config.policy.fever_threshold_c:
                leds.allow()
                relay.pulse(config.gate.relay_pulse_s)
                pulses.append(name)
                voice.say("allow")
                log(f"{name}: allow: leds {leds.pattern}, gate {'open' if relay.is_open else 'shut'}")
            else:
                leds.attention()
                voice.say("fever")
                log(f"{name}: attention (fever): leds {leds.pattern}, gate stays shut")
            if pir is not None:
                pins.pin(config.pir.pin).drive_low()
            chip.object_c = chip.ambient_c
            time.sleep(config.gate.relay_pulse_s + 0.1)
            if relay.is_open:
                failures.append(f"{name}: gate still open after its pulse")

        visit("visitor 1", FOREHEAD_NORMAL_C)
        visit("visitor 2", FOREHEAD_FEVER_C)
        if button is not None:
            log("staff: holding the button to open for visitor 2")
            pin = pins.pin(config.button.pin)
            pin.drive_low() if config.button.pull_up else pin.drive_high()
            time.sleep(config.button.hold_s + 0.2)
            pin.drive_high() if config.button.pull_up else pin.drive_low()
            log(f"staff: override, gate {'open' if relay.is_open else 'shut'}")
            time.sleep(config.gate.relay_pulse_s + 0.1)
        leds.idle()
        voice.wait_idle(5.0)

    said = emulation.sink.said()
    out(f"said: {', '.join(said)}")
    out(f"gate pulses: {len(pulses)} ({', '.join(pulses)}); gate now shut")
    expected = 1 + (button is not None)  # visitor 1 and the staff override; the fever opens nothing
    if len(pulses) != expected:
        failures.append(f"expected {expected} gate pulses, got {len(pulses)}")
    for failure in failures:
        out(f"FAILED: {failure}")
    return 1 if failures else 0


def _read_frames(hw: Hardware, *, count: int) -> int:
    """Read up to `count` frames through the supervised camera; the number read."""
    stop = threading.Event()
    deadline = threading.Timer(2.0, stop.set)  # a camera that never opens must not hang the run
    deadline.start()
    camera = Camera(hw.camera_source, backoff_initial_s=0.05, backoff_max_s=0.2)
    read = 0
    try:
        for _frame in camera.frames(stop):
            read += 1
            if read >= count:
                stop.set()
    finally:
        deadline.cancel()
    return read
