"""Recording audio sink: notes what was said and when, taking each WAV's (scaled) real duration."""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from drivers.voice import DEVICE, VoiceError


@dataclass(frozen=True)
class Utterance:
    """One `play()` call: what was played, when on the monotonic clock, and whether it was cut off."""

    key: str
    text: str
    wav: Path
    started: float
    ended: float | None = None
    interrupted: bool = False

    @property
    def completed(self) -> bool:
        """True if it played to the end."""
        return self.ended is not None and not self.interrupted


def wav_duration(path: Path) -> float:
    """The length of a PCM WAV in seconds, from its header."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


class RecordingSink:
    """An `AudioSink` that plays nothing: it records each prompt and sleeps its duration × `time_scale`."""

    def __init__(self, *, time_scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Take `time_scale` × the WAV's duration per prompt (e.g. 0.05 for fast tests)."""
        if time_scale < 0:
            raise ValueError(f"time_scale {time_scale} is negative")
        self.time_scale = time_scale
        self._clock = clock
        self._cond = threading.Condition()
        self._log: list[Utterance] = []
        self._playing: int | None = None  # index into _log
        self._stop = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<RecordingSink x{self.time_scale:g}, {len(self._log)} utterances>"

    @property
    def utterances(self) -> list[Utterance]:
        """Everything played so far, oldest first (a snapshot)."""
        with self._cond:
            return list(self._log)

    @property
    def playing(self) -> Utterance | None:
        """The utterance being played now, if any."""
        with self._cond:
            return None if self._playing is None else self._log[self._playing]

    def said(self, *, texts: bool = False, completed_only: bool = False) -> list[str]:
        """Keys (or texts) played so far, in order; `completed_only` leaves out interrupted ones."""
        with self._cond:
            return [u.text if texts else u.key for u in self._log if not completed_only or u.completed]

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait up to `timeout` s until at least `count` utterances have started; True if so."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._log) >= count, timeout)

    def play(self, wav: Path, *, key: str, text: str) -> None:
        """Record the prompt and block for its scaled duration or until `stop()`; VoiceError for a bad WAV."""
        try:
            duration = wav_duration(wav) * self.time_scale
        except (OSError, wave.Error, EOFError, ZeroDivisionError) as err:
            raise VoiceError(DEVICE, f"cannot play prompt {key!r}: unusable WAV {wav}: {err}") from err
        with self._cond:
            if self._closed:
                raise VoiceError(DEVICE, f"cannot play prompt {key!r}: sink is closed")
            if self._playing is not None:
                raise RuntimeError("RecordingSink.play called while already playing")
            index = len(self._log)
            self._log.append(Utterance(key=key, text=text, wav=wav, started=self._clock()))
            self._playing = index
            self._stop = False
            self._cond.notify_all()
            stopped = self._cond.wait_for(lambda: self._stop, duration)
            self._log[index] = replace(self._log[index], ended=self._clock(), interrupted=stopped)
            self._playing = None
            self._stop = False
            self._cond.notify_all()

    def stop(self) -> None:
        """Cut the current utterance short; a no-op when nothing is playing."""
        with self._cond:
            if self._playing is not None:
                self._stop = True
                self._cond.notify_all()

    def close(self) -> None:
        """Stop playing; recordings stay readable, later `play()` calls raise VoiceError."""
        with self._cond:
            self._closed = True
        self.stop()
