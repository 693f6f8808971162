"""Voice prompts: real espeak-ng rendering and caching, the interrupting worker, RecordingSink and aplay."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import wait_until

from checkpoint.reasons import Reason
from drivers.emulated.voice import RecordingSink, wav_duration
from drivers.errors import DeviceError
from drivers.voice import SILENCE_KEY, AplaySink, Voice, VoiceError, cache_name
from kiosk.prompts import DEFAULT_PROMPTS

ESPEAK = shutil.which("espeak-ng")
APLAY = shutil.which("aplay")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng not on PATH")
needs_aplay = pytest.mark.skipif(APLAY is None, reason="aplay not on PATH")

SHOW_PASS = "请出示健康码和出入证"
PROMPTS = {"show_pass": SHOW_PASS, "welcome": "欢迎回家", "denied": "通行证无效"}


def make_wav(path: Path, seconds: float, *, rate: int = 8000) -> Path:
    """Write a silent 16-bit mono WAV of `seconds` length."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * round(seconds * rate))
    return path


def script(path: Path, body: str) -> str:
    """Write an executable shell script and return its path."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def counting_espeak(tmp_path: Path) -> tuple[str, Path]:
    """A wrapper that logs each call to a file and then runs the real espeak-ng."""
    calls = tmp_path / "espeak-calls"
    calls.touch()
    return script(tmp_path / "espeak-counting", f'echo "$*" >> "{calls}"\nexec "{ESPEAK}" "$@"\n'), calls


def call_count(calls: Path) -> int:
    return len(calls.read_text().splitlines())


def voice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voice"]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink(time_scale=0.05)


@pytest.fixture
def wavs(tmp_path: Path) -> dict[str, Path]:
    """Configured WAVs with known lengths: long (10 s), short (1 s), mid (2 s)."""
    return {
        "long": make_wav(tmp_path / "long.wav", 10.0),
        "short": make_wav(tmp_path / "short.wav", 1.0),
        "mid": make_wav(tmp_path / "mid.wav", 2.0),
    }


@pytest.fixture
def wav_voice(tmp_path: Path, wavs: dict[str, Path], sink: RecordingSink) -> Iterator[Voice]:
    """A Voice playing only configured WAVs, with an espeak-ng that must never be run."""
    never = script(tmp_path / "espeak-never", "exit 3\n")
    texts = {"long": "长提示", "short": "短提示", "mid": "中提示"}
    with Voice(prompts=texts, wav_files=wavs, cache_dir=tmp_path / "cache", sink=sink, espeak=never) as voice:
        voice.prepare()
        yield voice


# --- rendering and cache ------------------------------------------------------------------------


@needs_espeak
def test_espeak_renders_mandarin_prompt_to_valid_wav(tmp_path: Path, sink: RecordingSink) -> None:
    with Voice(prompts={"show_pass": SHOW_PASS}, cache_dir=tmp_path / "cache", sink=sink) as voice:
        voice.prepare()
        path = voice.wav_path("show_pass")
    assert path.parent == tmp_path / "cache"
    assert path.name == cache_name(SHOW_PASS, voice="cmn", speed_wpm=150)
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert 8000 <= wav.getframerate() <= 48000
        seconds = wav.getnframes() / wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    assert 1.0 < seconds < 15.0  # ten syllables of speech
    assert any(frames[i] for i in range(0, len(frames), 2))  # not silence
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # no temp files left


@needs_espeak
def test_cache_reuses_rendered_wav_across_instances(tmp_path: Path) -> None:
    espeak, calls = counting_espeak(tmp_path)
    cache = tmp_path / "cache"
    with Voice(prompts=PROMPTS, cache_dir=cache, sink=RecordingSink(), espeak=espeak) as first:
        first.prepare()
        first.prepare()
        paths = {key: first.wav_path(key) for key in PROMPTS}
    assert call_count(calls) == len(PROMPTS)
    assert "-v cmn -s 150 -w" in calls.read_text()
    mtimes = {key: path.stat().st_mtime_ns for key, path in paths.items()}
    with Voice(prompts=PROMPTS, cache_dir=cache, sink=RecordingSink(), espeak=espeak) as second:
        second.prepare()
        assert {key: second.wav_path(key) for key in PROMPTS} == paths
    assert call_count(calls) == len(PROMPTS)  # a restart renders nothing
    assert {key: path.stat().st_mtime_ns for key, path in paths.items()} == mtimes
    assert len(set(paths.values())) == len(PROMPTS)


@needs_espeak
@pytest.mark.parametrize(
    ("text", "voice", "speed"),
    [(SHOW_PASS, "cmn", 170), (SHOW_PASS, "en", 150), ("请出示出入证", "cmn", 150)],
)
def test_cache_name_changes_with_text_voice_and_speed(
    tmp_path: Path, text: str, voice: str, speed: int
) -> None:
    espeak, calls = counting_espeak(tmp_path)
    cache = tmp_path / "cache"
    with Voice(prompts={"p": SHOW_PASS}, cache_dir=cache, sink=RecordingSink(), espeak=espeak) as base:
        base.prepare()
        base_path = base.wav_path("p")
    with Voice(
        prompts={"p": text},
        voice=voice,
        speed_wpm=speed,
        cache_dir=cache,
        sink=RecordingSink(),
        espeak=espeak,
    ) as other:
        other.prepare()
        other_path = other.wav_path("p")
    assert other_path != base_path
    assert base_path.is_file() and other_path.is_file()
    assert call_count(calls) == 2
    assert f"-v {voice} -s {speed} -w" in calls.read_text().splitlines()[1]


def test_cache_name_is_sha256_of_text_voice_speed() -> None:
    name = cache_name(SHOW_PASS, voice="cmn", speed_wpm=150)
    assert name == cache_name(SHOW_PASS, voice="cmn", speed_wpm=150)
    assert len(name) == 64 + len(".wav") and name.endswith(".wav")
    assert name != cache_name(SHOW_PASS, voice="cmn", speed_wpm=151)
    assert name != cache_name(SHOW_PASS, voice="yue", speed_wpm=150)
    # Fields are delimited, so shifting characters between them changes the name.
    assert cache_name("1", voice="cmn", speed_wpm=15) != cache_name("01", voice="cmn", speed_wpm=1)


def test_configured_wav_is_played_without_espeak(
    wav_voice: Voice, wavs: dict[str, Path], sink: RecordingSink, tmp_path: Path
) -> None:
    # wav_voice's espeak always fails, so prepare() succeeding shows it was never needed.
    assert wav_voice.wav_path("short") == wavs["short"]
    wav_voice.say("short")
    assert wav_voice.wait_idle(2.0)
    [utterance] = sink.utterances
    assert (utterance.key, utterance.text, utterance.wav) == ("short", "短提示", wavs["short"])
    assert utterance.completed
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@needs_espeak
def test_wav_file_mixed_with_synthesis_only_renders_the_rest(tmp_path: Path, sink: RecordingSink) -> None:
    espeak, calls = counting_espeak(tmp_path)
    beep = make_wav(tmp_path / "beep.wav", 0.5)
    with Voice(
        prompts=PROMPTS, wav_files={"denied": beep}, cache_dir=tmp_path / "c", sink=sink, espeak=espeak
    ) as voice:
        voice.prepare()
        voice.say("denied")
        assert voice.wait_idle(2.0)
    assert call_count(calls) == 2
    assert "通行证无效" not in calls.read_text()
    assert [u.wav for u in sink.utterances] == [beep]


def test_missing_configured_wav_fails_prepare_naming_key(tmp_path: Path) -> None:
    with (
        Voice(
            prompts={"beep": "嘀"},
            wav_files={"beep": tmp_path / "nope.wav"},
            cache_dir=tmp_path,
            sink=RecordingSink(),
        ) as voice,
        pytest.raises(VoiceError, match="'beep'"),
    ):
        voice.prepare()


def test_espeak_failure_raises_voice_error_naming_key(tmp_path: Path) -> None:
    failing = script(tmp_path / "espeak-fail", 'echo "no such voice" >&2\nexit 1\n')
    cache = tmp_path / "cache"
    with (
        Voice(prompts=PROMPTS, cache_dir=cache, sink=RecordingSink(), espeak=failing) as voice,
        pytest.raises(VoiceError) as info,
    ):
        voice.prepare()
    err = info.value
    assert isinstance(err, DeviceError)
    assert err.device == "voice"
    assert "'show_pass'" in str(err)
    assert "exited 1" in str(err) and "no such voice" in str(err)
    assert list(cache.iterdir()) == []  # the temp file was cleaned up


def test_missing_espeak_raises_voice_error_naming_key(tmp_path: Path) -> None:
    with (
        Voice(
            prompts={"welcome": "欢迎"},
            cache_dir=tmp_path,
            sink=RecordingSink(),
            espeak=str(tmp_path / "no-espeak-here"),
        ) as voice,
        pytest.raises(VoiceError, match=r"'welcome'.*cannot run"),
    ):
        voice.prepare()


def test_espeak_exiting_zero_without_wav_is_an_error(tmp_path: Path) -> None:
    silent = script(tmp_path / "espeak-silent", "exit 0\n")
    with (
        Voice(
            prompts={"welcome": "欢迎"}, cache_dir=tmp_path / "c", sink=RecordingSink(), espeak=silent
        ) as voice,
        pytest.raises(VoiceError, match=r"'welcome'.*no WAV"),
    ):
        voice.prepare()
    assert list((tmp_path / "c").iterdir()) == []


def test_render_failure_in_say_is_logged_and_worker_survives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = script(tmp_path / "espeak-fail", "exit 1\n")
    sink = RecordingSink(time_scale=0.05)
    beep = make_wav(tmp_path / "beep.wav", 0.5)
    with Voice(
        prompts={"welcome": "欢迎", "beep": "嘀"},
        wav_files={"beep": beep},
        cache_dir=tmp_path,
        sink=sink,
        espeak=failing,
    ) as voice:
        with caplog.at_level(logging.ERROR, logger="drivers.voice"):
            voice.say("welcome")  # not prepared: rendered on the worker, which fails
            assert voice.wait_idle(2.0)
        assert any("'welcome'" in r.getMessage() for r in caplog.records)
        voice.say("beep")
        assert voice.wait_idle(2.0)
    assert sink.said() == ["beep"]


# --- say(), ordering and interruption -----------------------------------------------------------


def test_sequential_prompts_play_in_order_for_their_scaled_length(
    wav_voice: Voice, sink: RecordingSink
) -> None:
    for key in ("short", "mid"):
        wav_voice.say(key)
        assert wav_voice.wait_idle(2.0)
    assert sink.said() == ["short", "mid"]
    assert sink.said(texts=True) == ["短提示", "中提示"]
    short, mid = sink.utterances
    assert short.completed and mid.completed
    assert short.ended is not None and mid.ended is not None
    assert 0.045 <= short.ended - short.started < 0.5  # 1 s × 0.05
    assert 0.095 <= mid.ended - mid.started < 0.6  # 2 s × 0.05
    assert short.ended <= mid.started


def test_say_returns_at_once(wav_voice: Voice) -> None:
    started = time.monotonic()
    wav_voice.say("long")  # 0.5 s at this time scale
    assert time.monotonic() - started < 0.05
    assert not wav_voice.wait_idle(0.0)


def test_new_prompt_interrupts_the_playing_one(wav_voice: Voice, sink: RecordingSink) -> None:
    wav_voice.say("long")
    assert sink.wait_for(1, timeout=2.0)
    time.sleep(0.05)
    wav_voice.say("short")
    assert wav_voice.wait_idle(2.0)
    long, short = sink.utterances
    assert (long.key, short.key) == ("long", "short")
    assert long.interrupted and long.ended is not None
    assert long.ended - long.started < 0.4  # the full prompt would take 0.5 s
    assert short.completed
    assert long.ended <= short.started
    assert sink.said(completed_only=True) == ["short"]


def test_immediate_second_prompt_drops_or_interrupts_the_first(wav_voice: Voice, sink: RecordingSink) -> None:
    started = time.monotonic()
    wav_voice.say("long")
    wav_voice.say("short")
    assert wav_voice.wait_idle(2.0)
    assert time.monotonic() - started < 0.4  # "long" alone takes 0.5 s
    assert sink.said(completed_only=True) == ["short"]
    assert sink.said() in (["short"], ["long", "short"])
    assert all(u.interrupted for u in sink.utterances if u.key == "long")


def test_burst_plays_only_the_newest(wav_voice: Voice, sink: RecordingSink) -> None:
    wav_voice.say("long")
    assert sink.wait_for(1, timeout=2.0)
    for key in ("mid", "long", "mid", "short"):
        wav_voice.say(key)
    assert wav_voice.wait_idle(2.0)
    said = sink.said()
    assert said[-1] == "short" and sink.utterances[-1].completed
    assert sink.said(completed_only=True) == ["short"]
    assert len(said) <= 3  # older queued prompts were dropped, not all played in turn


@needs_espeak
def test_mandarin_prompts_words_recorded(tmp_path: Path) -> None:
    sink = RecordingSink(time_scale=0.05)
    with Voice(prompts=PROMPTS, cache_dir=tmp_path, sink=sink) as voice:
        voice.prepare()
        voice.say("show_pass")
        assert sink.wait_for(1, timeout=2.0)
        voice.say("welcome")
        assert voice.wait_idle(3.0)
    assert sink.said(texts=True) == [SHOW_PASS, "欢迎回家"]
    assert sink.utterances[0].interrupted and sink.utterances[1].completed
    assert sink.utterances[1].wav == tmp_path / cache_name("欢迎回家", voice="cmn", speed_wpm=150)


def test_unknown_key_is_logged_not_raised(
    wav_voice: Voice, sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="drivers.voice"):
        wav_voice.say("no_such_prompt")
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "no_such_prompt" in caplog.records[0].getMessage()
    assert wav_voice.wait_idle(1.0)
    assert voice_threads()
    wav_voice.say("short")
    assert wav_voice.wait_idle(2.0)
    assert sink.said() == ["short"]


def test_playback_error_is_logged_and_worker_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    good = make_wav(tmp_path / "good.wav", 0.5)
    sink = RecordingSink(time_scale=0.05)
    with Voice(
        prompts={"bad": "坏", "good": "好"},
        wav_files={"bad": bad, "good": good},
        cache_dir=tmp_path,
        sink=sink,
    ) as voice:
        with caplog.at_level(logging.ERROR, logger="drivers.voice"):
            voice.say("bad")
            assert voice.wait_idle(2.0)
        assert any("'bad'" in r.getMessage() for r in caplog.records)
        voice.say("good")
        assert voice.wait_idle(2.0)
    assert sink.said() == ["good"]


# --- lifecycle ----------------------------------------------------------------------------------


def test_close_is_idempotent_and_joins_the_worker(tmp_path: Path, wavs: dict[str, Path]) -> None:
    sink = RecordingSink(time_scale=1.0)  # "long" would take 10 s
    voice = Voice(prompts={"long": "长"}, wav_files={"long": wavs["long"]}, cache_dir=tmp_path, sink=sink)
    assert len(voice_threads()) == 1
    voice.say("long")
    assert sink.wait_for(1, timeout=2.0)
    started = time.monotonic()
    voice.close()
    assert time.monotonic() - started < 1.0
    assert voice.closed
    assert voice_threads() == []
    assert sink.utterances[0].interrupted
    voice.close()
    voice.say("long")  # logged and dropped, never raised
    assert sink.said() == ["long"]
    with pytest.raises(VoiceError, match="closed"):
        voice.prepare()
    with pytest.raises(VoiceError, match="closed"):
        sink.play(wavs["long"], key="long", text="长")  # Voice closed the sink it was given


def test_context_manager_closes(tmp_path: Path) -> None:
    with Voice(prompts={"a": "啊"}, cache_dir=tmp_path, sink=RecordingSink()) as voice:
        assert voice_threads()
    assert voice.closed
    assert voice_threads() == []


@pytest.mark.parametrize(
    "kwargs",
    [{"wav_files": {"ghost": Path("x.wav")}}, {"speed_wpm": 10}, {"speed_wpm": 1000}, {"voice": ""}],
)
def test_bad_options_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Voice(prompts={"a": "啊"}, cache_dir=tmp_path, sink=RecordingSink(), **kwargs)  # type: ignore[arg-type]
    assert voice_threads() == []


def test_recording_sink_reports_wav_duration(tmp_path: Path) -> None:
    assert wav_duration(make_wav(tmp_path / "x.wav", 2.5, rate=16000)) == pytest.approx(2.5)


# --- aplay --------------------------------------------------------------------------------------


@needs_aplay
@needs_espeak
def test_aplay_plays_rendered_prompt_on_null_device(tmp_path: Path) -> None:
    with Voice(prompts={"show_pass": SHOW_PASS}, cache_dir=tmp_path, sink=RecordingSink()) as voice:
        voice.prepare()
        wav = voice.wav_path("show_pass")
    sink = AplaySink(device="null")
    started = time.monotonic()
    sink.play(wav, key="show_pass", text=SHOW_PASS)
    assert time.monotonic() - started < 5.0
    sink.close()


@needs_aplay
def test_voice_with_aplay_sink_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    beep = make_wav(tmp_path / "beep.wav", 1.0)
    with (
        caplog.at_level(logging.ERROR),
        Voice(
            prompts={"beep": "嘀"},
            wav_files={"beep": beep},
            cache_dir=tmp_path,
            sink=AplaySink(device="null"),
        ) as voice,
    ):
        voice.say("beep")
        assert voice.wait_idle(5.0)
    assert caplog.records == []


@needs_aplay
def test_aplay_failure_raises_voice_error(tmp_path: Path) -> None:
    beep = make_wav(tmp_path / "beep.wav", 0.2)
    sink = AplaySink(device="no_such_pcm_device")
    with pytest.raises(VoiceError, match="exited 1 playing prompt 'beep'") as info:
        sink.play(beep, key="beep", text="嘀")
    assert "Unknown PCM no_such_pcm_device" in str(info.value)  # aplay's own message is kept


# --- the output check (kiosk check): the audio device must open -----------------------------------


def test_check_output_plays_a_short_silence_through_the_sink(wav_voice: Voice, sink: RecordingSink) -> None:
    wav_voice.check_output()
    played = sink.utterances[-1]
    assert played.key == SILENCE_KEY and played.completed
    with wave.open(str(played.wav), "rb") as wav:
        assert 0 < wav.getnframes() / wav.getframerate() <= 0.25
        assert set(wav.readframes(wav.getnframes())) == {0}
    wav_voice.say("short")  # the worker still plays prompts afterwards
    assert sink.wait_for(2, 5.0) and sink.said()[-1] == "short"


@needs_aplay
def test_check_output_fails_on_a_card_that_is_not_there(tmp_path: Path) -> None:
    sink = AplaySink(device="hw:CARD=NoSuchCheckpointCard")
    with (
        Voice(prompts={"beep": "嘀"}, cache_dir=tmp_path, sink=sink) as voice,
        pytest.raises(VoiceError) as info,
    ):
        voice.check_output()
    message = str(info.value)
    assert "hw:CARD=NoSuchCheckpointCard" in message and "audio open error" in message
    assert "\n" not in message


@needs_aplay
def test_check_output_passes_on_alsa_null_device(tmp_path: Path) -> None:
    with Voice(prompts={"beep": "嘀"}, cache_dir=tmp_path, sink=AplaySink(device="null")) as voice:
        voice.check_output()


def test_missing_aplay_raises_voice_error(tmp_path: Path) -> None:
    sink = AplaySink(aplay=str(tmp_path / "no-aplay"))
    with pytest.raises(VoiceError, match=r"'beep'.*cannot run"):
        sink.play(make_wav(tmp_path / "beep.wav", 0.2), key="beep", text="嘀")


def play_in_thread(sink: AplaySink, wav: Path) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sink.play(wav, key="long", text="长")
        except BaseException as err:  # reported to the test thread
            errors.append(err)

    thread = threading.Thread(target=run, name="test-play", daemon=True)
    thread.start()
    return thread, errors


@needs_aplay
def test_aplay_stop_interrupts_long_wav_promptly(tmp_path: Path) -> None:
    # ALSA's null device swallows audio instantly, so a long WAV file would "play" in milliseconds.
    # Feed the 8 s WAV through a FIFO instead: aplay gets the header and the first half second,
    # then blocks waiting for the rest. (Blocked in read(), aplay survives SIGTERM, so this also
    # covers the SIGKILL fallback; on a card, SIGTERM aborts the PCM write and aplay exits.)
    source = make_wav(tmp_path / "long.wav", 8.0)
    data = source.read_bytes()
    fifo = tmp_path / "long-fifo.wav"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)  # a writer that never blocks and keeps the FIFO open
    try:
        os.write(fd, data[: 44 + 8000])
        sink = AplaySink(device="null")
        thread, errors = play_in_thread(sink, fifo)
        thread.join(0.3)
        assert thread.is_alive(), f"aplay returned early: {errors}"
        started = time.monotonic()
        sink.stop()
        thread.join(2.0)
        assert not thread.is_alive()
        assert time.monotonic() - started < 0.5
        assert errors == []  # a stopped aplay's exit status is not an error
        sink.close()
    finally:
        os.close(fd)


def test_stop_kills_a_player_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = tmp_path / "stubborn-aplay"
    stubborn.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(30)\n"
    )
    stubborn.chmod(0o755)
    sink = AplaySink(aplay=str(stubborn), stop_timeout=0.2)
    thread, errors = play_in_thread(sink, make_wav(tmp_path / "x.wav", 0.1))
    assert wait_until(ready.exists, timeout=5.0)
    started = time.monotonic()
    sink.stop()
    thread.join(3.0)
    assert not thread.is_alive()
    assert 0.15 <= time.monotonic() - started < 1.5
    assert errors == []


def test_every_reason_code_has_a_mandarin_prompt() -> None:
    """Issue 15: the travel reasons are said in Mandarin, like every other reason code."""
    assert {str(reason) for reason in Reason} <= set(DEFAULT_PROMPTS)
    assert DEFAULT_PROMPTS["travel_risk"] == "行程卡异常，请配合工作人员"
    assert DEFAULT_PROMPTS["health_code_not_holder"] == "健康码与通行证不符，请配合工作人员"
    assert DEFAULT_PROMPTS["no_travel_code"] == "请出示行程卡"


@needs_espeak
def test_travel_prompts_render(tmp_path: Path, sink: RecordingSink) -> None:
    keys = ("travel_risk", "health_code_not_holder", "no_travel_code")
    prompts = {k: DEFAULT_PROMPTS[k] for k in keys}
    with Voice(prompts=prompts, cache_dir=tmp_path / "cache", sink=sink) as voice:
        voice.prepare()
        durations = [wav_duration(voice.wav_path(key)) for key in keys]
    assert all(0.5 < seconds < 15.0 for seconds in durations)
