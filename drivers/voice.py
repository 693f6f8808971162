"""Spoken prompts: espeak-ng renders each prompt once to a cached WAV, a worker thread plays the newest."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from drivers.base import Device
from drivers.errors import DeviceError

log = logging.getLogger(__name__)

DEVICE = "voice"
RENDER_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 5.0
MIN_SPEED_WPM = 80
MAX_SPEED_WPM = 450
SILENCE_KEY = "(silence)"  # the key the output check plays under; no prompt has it
SILENCE_S = 0.1
# Bump when the rendering command changes, so stale cached WAVs are not reused.
_CACHE_FORMAT = "espeak-ng-wav-1"


class VoiceError(DeviceError):
    """A prompt could not be rendered or played."""


class AudioSink(Protocol):
    """Where rendered prompts are played."""

    def play(self, wav: Path, *, key: str, text: str) -> None:
        """Play `wav`, blocking until it ends or `stop()` interrupts it; raise VoiceError on failure."""
        ...

    def stop(self) -> None:
        """Interrupt the current `play()` from another thread; a no-op when nothing is playing."""
        ...

    def close(self) -> None:
        """Stop playing and release the output; safe to call again."""
        ...


class AplaySink:
    """Plays WAVs through ALSA with `aplay -q -D DEVICE file.wav`, one subprocess per prompt."""

    def __init__(
        self, *, device: str = "default", aplay: str = "aplay", stop_timeout: float = 0.2, poll: float = 0.05
    ) -> None:
        """Play on ALSA PCM `device`; a stopped aplay gets SIGTERM, then SIGKILL after `stop_timeout` s."""
        self.device = device
        self._aplay = aplay
        self._stop_timeout = stop_timeout
        self._poll = poll
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._kill_at: float | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<AplaySink {self.device!r}{' closed' if self._closed else ''}>"

    def play(self, wav: Path, *, key: str, text: str) -> None:
        """Run aplay on `wav` until it exits; VoiceError if it fails other than by `stop()`."""
        command = [self._aplay, "-q", "-D", self.device, str(wav)]
        with self._lock:
            if self._closed:
                raise VoiceError(DEVICE, f"cannot play prompt {key!r}: sink is closed")
            self._kill_at = None
            try:
                proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            except OSError as err:
                raise VoiceError(
                    DEVICE, f"cannot play prompt {key!r}: cannot run {self._aplay}: {err}"
                ) from err
            self._proc = proc
        try:
            stderr = self._wait(proc)
        finally:
            with self._lock:
                self._proc = None
                stopped = self._kill_at is not None
                self._kill_at = None
        if proc.returncode != 0 and not stopped:
            detail = alsa_summary(stderr.decode(errors="replace")) or "no message"
            raise VoiceError(
                DEVICE, f"aplay on {self.device!r} exited {proc.returncode} playing prompt {key!r}: {detail}"
            )

    def stop(self) -> None:
        """Terminate the running aplay without blocking; `play()` kills it if it lingers."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or self._kill_at is not None:
                return
            self._kill_at = time.monotonic() + self._stop_timeout
            proc.terminate()

    def close(self) -> None:
        """Stop any playback; later `play()` calls raise VoiceError."""
        self.stop()
        with self._lock:
            self._closed = True

    def _wait(self, proc: subprocess.Popen[bytes]) -> bytes:
        """Wait for `proc` to exit, killing it once a stop's grace period is over; return its stderr."""
        while True:
            try:
                _, stderr = proc.communicate(timeout=self._poll)
                return stderr
            except subprocess.TimeoutExpired:
                with self._lock:
                    kill_at = self._kill_at
                if kill_at is not None and time.monotonic() >= kill_at:
                    proc.kill()


def alsa_summary(stderr: str) -> str:
    """aplay's stderr on one line: its own messages, after the last of ALSA's (which says what failed)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    alsa = [line for line in lines if line.startswith("ALSA lib ")]
    return "; ".join(alsa[-1:] + [line for line in lines if not line.startswith("ALSA lib ")])


def write_silence(path: Path, seconds: float, *, rate: int = 16000) -> None:
    """Write `seconds` of silence as a 16-bit mono PCM WAV."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * max(round(seconds * rate), 1))


def cache_name(text: str, *, voice: str, speed_wpm: int) -> str:
    """The cached WAV's file name: a sha256 of the text, voice and speed."""
    material = "\0".join((_CACHE_FORMAT, voice, str(speed_wpm), text))
    return hashlib.sha256(material.encode()).hexdigest() + ".wav"


def check_wav(path: Path) -> None:
    """Raise wave.Error or OSError unless `path` is a readable PCM WAV with at least one frame."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnframes() == 0:
            raise wave.Error("no audio frames")


class Voice(Device):
    """Speaks named prompts; `say()` returns at once and a newer prompt cuts off an older one."""

    error = VoiceError

    def __init__(
        self,
        *,
        prompts: Mapping[str, str],
        wav_files: Mapping[str, Path] | None = None,
        voice: str = "cmn",
        speed_wpm: int = 150,
        cache_dir: Path,
        sink: AudioSink | None = None,
        espeak: str = "espeak-ng",
    ) -> None:
        """Set up prompts and start the worker; the sink (default `AplaySink()`) is owned and closed here."""
        wav_files = dict(wav_files or {})
        if extra := sorted(set(wav_files) - set(prompts)):
            raise ValueError(f"wav_files for keys with no prompt text: {', '.join(extra)}")
        if not voice or any(c.isspace() for c in voice):
            raise ValueError(f"bad espeak-ng voice name {voice!r}")
        if not MIN_SPEED_WPM <= speed_wpm <= MAX_SPEED_WPM:
            raise ValueError(f"speed {speed_wpm} wpm outside {MIN_SPEED_WPM}..{MAX_SPEED_WPM}")
        self.device = DEVICE
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.cache_dir = Path(cache_dir)
        self._prompts = dict(prompts)
        self._espeak = espeak
        self._wavs: dict[str, Path] = {key: Path(path) for key, path in wav_files.items()}
        self._render_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: str | None = None
        self._busy = False
        self._closed = False
        self._sink: AudioSink = sink if sink is not None else AplaySink()
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("busy" if self._busy else "idle")
        return f"<Voice {self.voice} {self.speed_wpm} wpm, {len(self._prompts)} prompts, {state}>"

    @property
    def keys(self) -> list[str]:
        """The prompt keys, in configuration order."""
        return list(self._prompts)

    def wav_path(self, key: str) -> Path:
        """Where `key` is played from: its configured WAV, or its cache file (which may not exist yet)."""
        if key not in self._prompts:
            raise KeyError(key)
        if key in self._wavs:
            return self._wavs[key]
        return self.cache_dir / cache_name(self._prompts[key], voice=self.voice, speed_wpm=self.speed_wpm)

    def prepare(self) -> None:
        """Render all prompts now (reusing cached WAVs), check configured WAVs; VoiceError names the key."""
        if self._closed:
            raise VoiceError(DEVICE, "device is closed")
        for key in self._prompts:
            self._wav(key)

    def check_output(self, seconds: float = SILENCE_S) -> None:
        """Play `seconds` of silence through the sink now, as a prompt would be played.

        This opens the audio device: VoiceError if it cannot (no sound card, a wrong `device`, no
        permission). Waits for a prompt that is playing to end first; a prompt said meanwhile cuts the
        silence short and plays after it.
        """
        path = self.cache_dir / f"silence-{round(seconds * 1000)}ms.wav"
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            if not path.is_file():
                write_silence(path, seconds)
        except OSError as err:
            raise VoiceError(DEVICE, f"cannot write a test sound to {path}: {err}") from err
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (not self._busy and self._pending is None))
            if self._closed:
                raise VoiceError(DEVICE, "device is closed")
            self._busy = True
        try:
            self._sink.play(path, key=SILENCE_KEY, text="")
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def say(self, key: str) -> None:
        """Queue `key`, interrupting whatever is playing; an unknown key is logged, never raised."""
        if key not in self._prompts:
            log.error("unknown voice prompt %r; known: %s", key, ", ".join(self._prompts))
            return
        with self._cond:
            if self._closed:
                log.warning("voice prompt %r dropped: device is closed", key)
                return
            if self._pending is not None:
                log.debug("voice prompt %r superseded by %r", self._pending, key)
            self._pending = key
            if self._busy:
                # Under the lock, so the stop cannot land on the newer prompt once the worker takes it.
                self._sink.stop()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` s until nothing is playing or queued; True if so."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and self._pending is None, timeout)

    def close(self) -> None:
        """Stop playback, stop and join the worker, close the sink; safe to call again."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._pending = None
            if self._busy:
                self._sink.stop()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("voice worker did not stop within %g s", JOIN_TIMEOUT_S)
        self._sink.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                # Not while busy: check_output() may be playing through the sink from another thread.
                self._cond.wait_for(lambda: self._closed or (self._pending is not None and not self._busy))
                if self._closed:
                    return
                key = self._pending
                assert key is not None
                self._pending = None
                self._busy = True
            try:
                self._speak(key)
            except VoiceError as err:
                log.error("voice prompt %r failed: %s", key, err)
            except Exception:
                log.exception("voice prompt %r failed", key)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _speak(self, key: str) -> None:
        wav = self._wav(key)  # may render, which takes a while
        with self._cond:
            if self._closed or self._pending is not None:
                log.debug("voice prompt %r superseded before it played", key)
                return
        # A say() landing between this check and the sink starting finds nothing to stop, so this
        # prompt then plays out before the newer one; the window is a few bytecodes wide.
        self._sink.play(wav, key=key, text=self._prompts[key])

    def _wav(self, key: str) -> Path:
        """The WAV for `key`, rendering it into the cache if needed."""
        if key in self._wavs:
            path = self._wavs[key]
            try:
                check_wav(path)
            except (OSError, wave.Error, EOFError) as err:
                raise VoiceError(DEVICE, f"prompt {key!r}: unusable WAV file {path}: {err}") from err
            return path
        path = self.wav_path(key)
        with self._render_lock:
            if not path.is_file():
                self._render(key, path)
        return path

    def _render(self, key: str, path: Path) -> None:
        """Run espeak-ng for `key` into a temp file beside `path`, then rename it into place."""
        text = self._prompts[key]
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{path.stem[:16]}.", suffix=".tmp")
            os.close(fd)
        except OSError as err:
            raise VoiceError(DEVICE, f"cannot render prompt {key!r}: cache {self.cache_dir}: {err}") from err
        tmp = Path(tmp_name)
        command = [self._espeak, "-v", self.voice, "-s", str(self.speed_wpm), "-w", str(tmp), "--", text]
        try:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=RENDER_TIMEOUT_S,
                    check=False,
                )
            except OSError as err:
                raise VoiceError(
                    DEVICE, f"cannot render prompt {key!r}: cannot run {self._espeak}: {err}"
                ) from err
            except subprocess.TimeoutExpired as err:
                raise VoiceError(
                    DEVICE, f"cannot render prompt {key!r}: {self._espeak} took over {RENDER_TIMEOUT_S:g} s"
                ) from err
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).decode(errors="replace").strip() or "no message"
                raise VoiceError(
                    DEVICE,
                    f"cannot render prompt {key!r}: {self._espeak} exited {result.returncode}: {detail}",
                )
            try:
                check_wav(tmp)
            except (OSError, wave.Error, EOFError) as err:
                raise VoiceError(
                    DEVICE, f"cannot render prompt {key!r}: {self._espeak} wrote no WAV: {err}"
                ) from err
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise VoiceError(DEVICE, f"cannot render prompt {key!r}: cannot save {path}: {err}") from err
        finally:
            tmp.unlink(missing_ok=True)
        log.info("rendered voice prompt %r to %s", key, path)
