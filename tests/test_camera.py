"""Camera sources and the reopening supervisor, on image files, a video, and fake devices."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from drivers.camera import (
    Camera,
    CameraError,
    Frame,
    FrameSource,
    Picamera2Source,
    SourceBase,
    V4l2Source,
    self_test,
)
from drivers.emulated.camera import FileSource, Pacer

W, H = 64, 48
# Solid images, so their gray value survives any resize: 10, BGR (30, 60, 90) -> 66, BGRA 200.
GRAY_A, GRAY_B, GRAY_C = 10, 66, 200


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three solid images of different sizes and channel counts, plus a file that is not an image."""
    folder = tmp_path / "frames"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "01-gray.png"), np.full((H, W), GRAY_A, np.uint8))
    assert cv2.imwrite(str(folder / "02-colour.bmp"), np.full((100, 120, 3), (30, 60, 90), np.uint8))
    assert cv2.imwrite(str(folder / "03-alpha.png"), np.full((30, 40, 4), (200, 200, 200, 255), np.uint8))
    (folder / "notes.txt").write_text("not a frame")
    return folder


def levels(source: FrameSource, count: int) -> list[int]:
    """Read `count` frames, checking each one's type and shape, and return their mean gray levels."""
    out = []
    for _ in range(count):
        frame = source.read()
        assert frame.ndim == 2 and frame.dtype == np.uint8 and frame.shape == (H, W)
        out.append(round(float(frame.mean())))
    return out


def test_directory_plays_sorted_gray_at_size_and_loops(image_dir: Path) -> None:
    with FileSource(image_dir, width=W, height=H, realtime=False) as source:
        assert levels(source, 7) == [GRAY_A, GRAY_B, GRAY_C] * 2 + [GRAY_A]


def test_directory_without_loop_ends_with_error(image_dir: Path) -> None:
    with FileSource(image_dir, width=W, height=H, loop=False, realtime=False) as source:
        assert levels(source, 3) == [GRAY_A, GRAY_B, GRAY_C]
        with pytest.raises(CameraError, match="end of input") as caught:
            source.read()
    assert caught.value.device == f"camera files:{image_dir}"


def test_unreadable_image_is_skipped_with_one_warning(
    image_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (image_dir / "02-broken.png").write_bytes(b"\x89PNG but not really")
    with caplog.at_level(logging.WARNING), FileSource(image_dir, width=W, height=H, realtime=False) as source:
        assert levels(source, 6) == [GRAY_A, GRAY_B, GRAY_C] * 2
    warnings = [r for r in caplog.records if "02-broken.png" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_directory_of_only_unreadable_images_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"nope")
    with FileSource(tmp_path, realtime=False) as source, pytest.raises(CameraError, match="no readable"):
        source.read()


def test_single_image_repeats_or_ends(image_dir: Path) -> None:
    image = image_dir / "02-colour.bmp"
    with FileSource(image, width=W, height=H, realtime=False) as source:
        assert levels(source, 3) == [GRAY_B] * 3
    with FileSource(image, width=W, height=H, loop=False, realtime=False) as source:
        assert levels(source, 1) == [GRAY_B]
        with pytest.raises(CameraError, match="end of input"):
            source.read()


def test_missing_or_empty_input_fails_on_open(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file") as caught:
        FileSource(tmp_path / "absent").open()
    assert "absent" in caught.value.device
    with pytest.raises(CameraError, match="no images"):
        FileSource(tmp_path).open()
    (tmp_path / "clip.avi").write_bytes(b"not a video")
    with pytest.raises(CameraError, match="cannot open video"):
        FileSource(tmp_path / "clip.avi").open()


def test_video_file_plays_loops_and_ends(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 72))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG")
    values = [20, 60, 100, 140, 180]
    for value in values:
        writer.write(np.full((72, 96, 3), value, np.uint8))
    writer.release()

    with FileSource(path, width=W, height=H, loop=False, realtime=False) as source:
        got = levels(source, 5)
        with pytest.raises(CameraError, match="end of input"):
            source.read()
    assert all(abs(a - b) <= 3 for a, b in zip(got, values, strict=True)), got

    with FileSource(path, width=W, height=H, realtime=False) as source:
        first = source.read()
        second = source.read()
        assert first is second, "resized frames should reuse one buffer"
        looped = levels(source, 5)
    assert abs(looped[-2] - values[0]) <= 3 and abs(looped[-1] - values[1]) <= 3, looped


def test_realtime_paces_at_fps(image_dir: Path) -> None:
    with FileSource(image_dir, width=W, height=H, fps=50) as source:
        start = time.monotonic()
        levels(source, 10)
        paced = time.monotonic() - start
    with FileSource(image_dir, width=W, height=H, fps=50, realtime=False) as source:
        start = time.monotonic()
        levels(source, 10)
        unpaced = time.monotonic() - start
    assert 0.15 <= paced < 1.0, paced  # nine periods of 20 ms after the first frame
    assert unpaced < 0.1, unpaced


def test_pacer_schedule_does_not_drift() -> None:
    now = [100.0]

    def clock() -> float:
        now[0] += 0.003  # every look at the clock costs 3 ms of "work"
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds + 0.002  # and every sleep overshoots by 2 ms

    pacer = Pacer(10, clock=clock, sleep=sleep)
    times = []
    for _ in range(20):
        pacer.wait()
        times.append(now[0])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[-1] - times[0] == pytest.approx(19 * 0.1, abs=0.01)
    assert all(0.09 < gap < 0.11 for gap in gaps), gaps


def test_pacer_restarts_instead_of_bursting_after_a_stall() -> None:
    now = [0.0]
    sleeps: list[float] = []
    pacer = Pacer(10, clock=lambda: now[0], sleep=sleeps.append)
    pacer.wait()
    now[0] = 1.0  # a 1 s stall: ten frames late
    pacer.wait()
    pacer.wait()
    assert sleeps == [pytest.approx(0.1)]


class FakeSource(SourceBase):
    """A FrameSource that fails on open or after a number of frames, as its factory says."""

    def __init__(self, fail_open: bool, frames: int | None) -> None:
        self.name = "camera fake"
        self.fail_open = fail_open
        self.frames_left = frames
        self.opened = False
        self.closed = 0
        self.frame: Frame = np.zeros((H, W), np.uint8)

    def open(self) -> None:
        if self.fail_open:
            raise CameraError(self.name, "cannot open")
        self.opened = True

    def read(self) -> Frame:
        if self.frames_left is not None:
            if self.frames_left == 0:
                raise CameraError(self.name, "read failed")
            self.frames_left -= 1
        self.frame += 1
        return self.frame

    def close(self) -> None:
        self.closed += 1


class FakeFactory:
    """Opens fail for the first `fail_opens` sources; each later one gives `frames` frames (None: forever)."""

    def __init__(self, fail_opens: int, frames: int | None) -> None:
        self.fail_opens = fail_opens
        self.frames = frames
        self.made: list[FakeSource] = []

    def __call__(self) -> FakeSource:
        source = FakeSource(len(self.made) < self.fail_opens, self.frames)
        self.made.append(source)
        return source


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded; it sets itself after `max_waits` waits."""

    def __init__(self, max_waits: int = 50) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.max_waits = max_waits

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if len(self.waits) >= self.max_waits:
            self.set()
        return self.is_set()


class Calls:
    """Records the supervisor's callbacks."""

    def __init__(self) -> None:
        self.faults: list[CameraError] = []
        self.recoveries = 0

    def fault(self, error: CameraError) -> None:
        self.faults.append(error)

    def recover(self) -> None:
        self.recoveries += 1


def collect(camera: Camera, stop: threading.Event, count: int) -> list[int]:
    """Take up to `count` frames (bounded), then set `stop`; returns each frame's first pixel."""
    out = []
    for frame in itertools.islice(camera.frames(stop), count):
        out.append(int(frame[0, 0]))
    stop.set()
    return out


def test_supervisor_reports_once_backs_off_capped_and_recovers() -> None:
    factory, calls, stop = FakeFactory(fail_opens=5, frames=None), Calls(), RecordingStop()
    camera = Camera(factory, backoff_initial_s=0.01, backoff_max_s=0.05,
                    on_fault=calls.fault, on_recover=calls.recover)
    assert collect(camera, stop, 3) == [1, 2, 3]
    assert len(calls.faults) == 1 and calls.faults[0].device == "camera fake"
    assert stop.waits == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    assert calls.recoveries == 1 and not camera.faulted
    assert len(factory.made) == 6 and all(s.closed >= 1 for s in factory.made)


def test_supervisor_reports_each_outage_and_resets_backoff() -> None:
    factory, calls, stop = FakeFactory(fail_opens=0, frames=2), Calls(), RecordingStop()
    camera = Camera(factory, backoff_initial_s=0.01, backoff_max_s=1.0,
                    on_fault=calls.fault, on_recover=calls.recover)
    assert collect(camera, stop, 6) == [1, 2, 1, 2, 1, 2]
    assert [f.detail for f in calls.faults] == ["read failed", "read failed"]
    assert calls.recoveries == 2
    assert stop.waits == pytest.approx([0.01, 0.01])


def test_supervisor_reopens_file_source_at_end_of_input(image_dir: Path) -> None:
    calls, stop = Calls(), RecordingStop()
    camera = Camera(lambda: FileSource(image_dir, width=W, height=H, loop=False, realtime=False),
                    backoff_initial_s=0.01, on_fault=calls.fault, on_recover=calls.recover)
    assert collect(camera, stop, 7) == [GRAY_A, GRAY_B, GRAY_C] * 2 + [GRAY_A]
    assert [f.detail for f in calls.faults] == ["end of input", "end of input"]
    assert calls.recoveries == 2


def test_supervisor_stops_promptly_during_backoff() -> None:
    faulted = threading.Event()
    stop = threading.Event()
    camera = Camera(FakeFactory(fail_opens=1000, frames=None), backoff_initial_s=10.0, backoff_max_s=10.0,
                    on_fault=lambda _: faulted.set())
    got: list[Frame] = []
    ended = threading.Event()

    def consume() -> None:
        got.extend(camera.frames(stop))
        ended.set()

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    assert faulted.wait(2.0)
    start = time.monotonic()
    stop.set()
    worker.join(2.0)
    assert ended.is_set() and time.monotonic() - start < 1.0 and got == []


def test_supervisor_closes_source_on_stop_and_on_early_exit() -> None:
    factory, stop = FakeFactory(fail_opens=0, frames=None), threading.Event()
    frames = Camera(factory).frames(stop)
    next(frames)
    stop.set()
    assert list(itertools.islice(frames, 5)) == []
    assert factory.made[0].closed == 1

    factory = FakeFactory(fail_opens=0, frames=None)
    frames = Camera(factory).frames(threading.Event())
    next(frames)
    frames.close()
    assert factory.made[0].closed == 1


def test_callback_errors_do_not_stop_the_supervisor() -> None:
    def broken(_: CameraError) -> None:
        raise RuntimeError("LED driver exploded")

    camera = Camera(FakeFactory(fail_opens=2, frames=None), backoff_initial_s=0.01, on_fault=broken)
    assert collect(camera, RecordingStop(), 2) == [1, 2]


def test_v4l2_missing_device_names_it() -> None:
    with pytest.raises(CameraError, match="cannot open") as caught:
        V4l2Source("/dev/video99").open()
    assert caught.value.device == "camera /dev/video99"
    assert V4l2Source(3).name == V4l2Source("3").name == "camera /dev/video3"
    with pytest.raises(CameraError):
        self_test(V4l2Source("/dev/video99"), fps=15)


def test_supervisor_keeps_running_on_missing_v4l2_device() -> None:
    calls, stop = Calls(), RecordingStop(max_waits=4)
    camera = Camera(lambda: V4l2Source("/dev/video99"), backoff_initial_s=0.01, backoff_max_s=0.03,
                    on_fault=calls.fault, on_recover=calls.recover)
    assert list(itertools.islice(camera.frames(stop), 10)) == []
    assert len(calls.faults) == 1 and calls.faults[0].device == "camera /dev/video99"
    assert stop.waits == pytest.approx([0.01, 0.02, 0.03, 0.03])
    assert calls.recoveries == 0 and camera.faulted


class FakeCapture:
    """Stands in for cv2.VideoCapture: a red 320x240 BGR picture for two reads, then an unplug."""

    made: ClassVar[list[FakeCapture]] = []

    def __init__(self, device: int | str, api: int) -> None:
        self.device, self.api = device, api
        self.props: dict[int, float] = {}
        self.reads = 0
        self.released = 0
        FakeCapture.made.append(self)

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: 320.0, cv2.CAP_PROP_FRAME_HEIGHT: 240.0}.get(prop, 30.0)

    def read(self, image: Any = None) -> tuple[bool, Any]:
        self.reads += 1
        if self.reads > 2:
            return False, None
        if image is None:
            image = np.empty((240, 320, 3), np.uint8)
        image[:] = (0, 0, 255)
        return True, image

    def release(self) -> None:
        self.released += 1


def test_v4l2_converts_resizes_and_reports_unplug(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCapture.made = []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    source = V4l2Source("/dev/video0", width=W, height=H, fps=15)
    with source:
        cap = FakeCapture.made[0]
        assert (cap.device, cap.api) == ("/dev/video0", cv2.CAP_V4L2)
        assert cap.props == {cv2.CAP_PROP_FRAME_WIDTH: W, cv2.CAP_PROP_FRAME_HEIGHT: H, cv2.CAP_PROP_FPS: 15}
        assert levels(source, 2) == [76, 76]  # 0.299 * 255
        with pytest.raises(CameraError, match="unplugged") as caught:
            source.read()
        assert caught.value.device == "camera /dev/video0"
    source.close()
    assert cap.released == 1
    assert self_test(V4l2Source(0, width=W, height=H), fps=15) == f"{W}x{H}@15"


def test_picamera2_missing_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails even where it is installed
    with pytest.raises(CameraError, match="picamera2 is not installed") as caught:
        Picamera2Source(width=W, height=H, fps=15).open()
    assert caught.value.device == "camera picamera2:0"
    assert "python3-picamera2" in str(caught.value) and "--system-site-packages" in str(caught.value)


@pytest.mark.parametrize(
    ("failure", "says", "never"),
    [
        pytest.param(
            "raise ModuleNotFoundError(\"No module named 'libcamera'\", name='libcamera')",
            ["libcamera", "python3-libcamera", "apt", "--system-site-packages"],
            "picamera2 is not installed",
            id="libcamera bindings missing (a venv without system site packages)",
        ),
        pytest.param(
            "raise ModuleNotFoundError(\"No module named 'simplejpeg'\", name='simplejpeg')",
            ["picamera2 cannot be imported", "simplejpeg", "python3-picamera2"],
            "picamera2 is not installed",
            id="another dependency of picamera2 missing",
        ),
        pytest.param(
            "raise ImportError('numpy.core.multiarray failed to import')",
            ["picamera2 cannot be imported", "numpy.core.multiarray failed to import"],
            "picamera2 is not installed",
            id="picamera2 fails inside its own import",
        ),
    ],
)
def test_picamera2_import_failure_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, says: list[str], never: str
) -> None:
    package = tmp_path / "site" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(failure + "\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(CameraError) as caught:
        Picamera2Source(width=W, height=H, fps=15).open()
    message = str(caught.value)
    assert caught.value.device == "camera picamera2:0"
    assert all(part in message for part in says), message
    assert never not in message
    assert "\n" not in message


def test_picamera2_takes_y_plane_without_stride_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    stride = 96
    planes = np.full((H * 3 // 2, stride), 128, np.uint8)  # Y rows, then U and V
    planes[:H, :W] = np.arange(H, dtype=np.uint8)[:, None]
    planes[:H, W:] = 255  # stride padding
    log: list[Any] = []

    class FakePicamera2:
        def __init__(self, camera_num: int) -> None:
            log.append(("num", camera_num))

        def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
            return kwargs

        def configure(self, config: dict[str, Any]) -> None:
            log.append(("config", config))

        def camera_configuration(self) -> dict[str, Any]:
            return {"main": {"size": (W, H)}}

        def start(self) -> None:
            log.append("start")

        def capture_array(self, name: str) -> Any:
            assert name == "main"
            return planes.copy()

        def stop(self) -> None:
            log.append("stop")

        def close(self) -> None:
            log.append("close")

    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    source = Picamera2Source(width=W, height=H, fps=15)
    with source:
        frame = source.read()
        assert frame.shape == (H, W) and frame.dtype == np.uint8
        assert np.array_equal(frame, planes[:H, :W])
    source.close()
    config = log[1][1]
    assert config["main"] == {"size": (W, H), "format": "YUV420"}
    assert config["controls"]["FrameDurationLimits"] == (66667, 66667)
    assert log[0] == ("num", 0) and log[2:] == ["start", "stop", "close"]


def test_self_test_describes_the_first_frame(image_dir: Path) -> None:
    assert self_test(FileSource(image_dir, width=W, height=H, realtime=False), fps=15) == f"{W}x{H}@15"
    assert self_test(FileSource(image_dir, realtime=False), fps=12) == "640x480@12"
    with pytest.raises(CameraError, match="cannot open video"):
        self_test(FileSource(image_dir / "notes.txt"), fps=15)
