"""The one place that knows real hardware from emulated: builds each device from the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockFactory

from drivers.button import StaffButton
from drivers.camera import FrameSource, Picamera2Source, V4l2Source
from drivers.emulated.camera import FileSource
from drivers.emulated.mlx90614 import Mlx90614Emulator
from drivers.emulated.voice import RecordingSink
from drivers.leds import StatusLeds
from drivers.mlx90614 import Mlx90614
from drivers.pir import Pir
from drivers.relay import GateRelay
from drivers.voice import AplaySink, AudioSink, Voice
from kiosk.config import KioskConfig

EMULATED_AMBIENT_C = 21.31


@dataclass
class Emulation:
    """The emulated parts a simulation or test drives: GPIO pins, the thermometer chip, the speaker."""

    pin_factory: MockFactory = field(default_factory=MockFactory)
    chip: Mlx90614Emulator | None = None
    sink: RecordingSink = field(default_factory=lambda: RecordingSink(time_scale=0.0))
    realtime_camera: bool = True


class Hardware:
    """Factory for the configured devices; with `hardware = "emulated"` they run on emulators."""

    def __init__(self, config: KioskConfig, *, emulation: Emulation | None = None) -> None:
        self.config = config
        self.emulated = config.hardware == "emulated"
        if self.emulated and emulation is None:
            emulation = Emulation()
        if self.emulated and emulation is not None and emulation.chip is None:
            emulation.chip = Mlx90614Emulator(
                address=config.thermometer.address,
                ambient_c=EMULATED_AMBIENT_C,
                object_c=EMULATED_AMBIENT_C,
                settle_reads=config.thermometer.settle_reads,
            )
        self.emulation = emulation if self.emulated else None

    @property
    def pin_factory(self) -> Any:
        """MockFactory when emulated; None (gpiozero's default or $GPIOZERO_PIN_FACTORY) when real."""
        return self.emulation.pin_factory if self.emulation is not None else None

    def thermometer(self) -> Mlx90614:
        """The MLX90614 on the configured bus, or on the chip emulator."""
        cfg = self.config.thermometer
        bus: Any = self.emulation.chip if self.emulation is not None else cfg.bus
        return Mlx90614(
            bus,
            address=cfg.address,
            retries=cfg.retries,
            settle_reads=cfg.settle_reads,
            emissivity=cfg.emissivity,
        )

    def camera_source(self) -> FrameSource:
        """A fresh, unopened frame source for the configured camera."""
        cfg = self.config.camera
        if cfg.source == "files":
            assert cfg.path is not None  # the config validator requires it
            realtime = self.emulation.realtime_camera if self.emulation is not None else True
            return FileSource(
                cfg.path, width=cfg.width, height=cfg.height, fps=cfg.fps, loop=cfg.loop, realtime=realtime
            )
        if cfg.source == "picamera2":
            return Picamera2Source(width=cfg.width, height=cfg.height, fps=cfg.fps)
        return V4l2Source(cfg.device, width=cfg.width, height=cfg.height, fps=cfg.fps)

    def relay(self) -> GateRelay:
        """The gate relay, de-energised (gate shut)."""
        cfg = self.config.gate
        return GateRelay(cfg.relay_pin, active_high=cfg.active_high, pin_factory=self.pin_factory)

    def leds(self) -> StatusLeds:
        """The green, red and amber status LEDs, all dark."""
        cfg = self.config.leds
        return StatusLeds(
            green=cfg.green_pin,
            red=cfg.red_pin,
            amber=cfg.amber_pin,
            active_high=cfg.active_high,
            pin_factory=self.pin_factory,
        )

    def pir(self) -> Pir | None:
        """The PIR motion sensor, or None when disabled."""
        cfg = self.config.pir
        if not cfg.enabled:
            return None
        return Pir(
            cfg.pin,
            queue_len=cfg.queue_len,
            sample_rate=cfg.sample_rate,
            threshold=cfg.threshold,
            pin_factory=self.pin_factory,
        )

    def button(self) -> StaffButton | None:
        """The staff button, or None when disabled."""
        cfg = self.config.button
        if not cfg.enabled:
            return None
        return StaffButton(
            cfg.pin,
            hold_s=cfg.hold_s,
            bounce_s=cfg.bounce_s,
            pull_up=cfg.pull_up,
            pin_factory=self.pin_factory,
        )

    def audio_sink(self) -> AudioSink:
        """aplay on the configured ALSA device, or the recording sink when emulated."""
        if self.emulation is not None:
            return self.emulation.sink
        return AplaySink(device=self.config.voice.device)

    def voice(self) -> Voice:
        """The voice prompter with the configured texts and WAV files."""
        cfg = self.config.voice
        return Voice(
            prompts=cfg.prompt_texts(),
            wav_files=cfg.files,
            voice=cfg.voice,
            speed_wpm=cfg.speed_wpm,
            cache_dir=cfg.cache_dir,
            sink=self.audio_sink(),
        )
