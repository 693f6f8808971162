"""Camera frame sources (V4L2, picamera2) and a supervisor that reopens them; files in drivers.emulated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Protocol, Self

import cv2
import numpy as np
import numpy.typing as npt

from drivers.errors import DeviceError

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]


class CameraError(DeviceError):
    """The camera could not be opened, stopped delivering frames, or ran out of input."""


class FrameSource(Protocol):
    """Grayscale uint8 frames of shape (height, width); `read` may reuse its buffer, so copy to keep one."""

    @property
    def name(self) -> str: ...

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def check_size(width: int, height: int, fps: int) -> None:
    """Reject a non-positive frame size or rate with ValueError."""
    if width <= 0 or height <= 0 or fps <= 0:
        raise ValueError(f"width, height and fps must be positive, got {width}x{height}@{fps}")


class ToGray:
    """Turns BGR/BGRA/gray images into gray uint8 at (height, width), reusing buffers between calls."""

    def __init__(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._out: Frame = np.empty((height, width), np.uint8)
        self._gray: Frame | None = None

    def __call__(self, image: Frame) -> Frame:
        if image.ndim == 3:
            channels = image.shape[2]
            if channels == 1:
                image = np.ascontiguousarray(image[:, :, 0])
            else:
                code = cv2.COLOR_BGRA2GRAY if channels == 4 else cv2.COLOR_BGR2GRAY
                self._gray = image = np.asarray(cv2.cvtColor(image, code, dst=self._gray), np.uint8)
        if image.shape == self._out.shape:
            return image
        return np.asarray(
            cv2.resize(image, self._size, dst=self._out, interpolation=cv2.INTER_AREA), np.uint8
        )


class SourceBase:
    """Context-manager plumbing shared by the sources."""

    name: str

    def open(self) -> None:
        """Open the device or input; reopens when already open."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or input; safe to call more than once."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class V4l2Source(SourceBase):
    """A USB/UVC camera through OpenCV's V4L2 backend."""

    def __init__(self, device: int | str = 0, *, width: int = 640, height: int = 480, fps: int = 15) -> None:
        check_size(width, height, fps)
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.name = f"camera /dev/video{device}" if isinstance(device, int) else f"camera {device}"
        self._cap: cv2.VideoCapture | None = None
        self._bgr: Any = None
        self._to_gray = ToGray(width, height)

    def open(self) -> None:
        """Open the device and ask for the configured size and rate."""
        self.close()
        try:
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        except cv2.error as exc:
            raise CameraError(self.name, f"cannot open: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise CameraError(self.name, "cannot open (missing, busy or not a capture device)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        log.info(
            "%s: opened, asked %dx%d@%d, device gives %dx%d@%g", self.name, self.width, self.height,
            self.fps, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            cap.get(cv2.CAP_PROP_FPS),
        )

    def read(self) -> Frame:
        """The next frame, gray at the configured size; CameraError when the device stops answering."""
        cap = self._cap
        if cap is None:
            raise CameraError(self.name, "read before open")
        try:
            ok, image = cap.read(self._bgr)
        except cv2.error as exc:
            raise CameraError(self.name, f"read failed: {exc}") from exc
        if not ok or image is None:
            raise CameraError(self.name, "read failed (unplugged?)")
        self._bgr = image
        return self._to_gray(np.asarray(image, np.uint8))

    def close(self) -> None:
        """Release the device; safe to call more than once."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def picamera2_import_problem(exc: ImportError) -> str:
    """What a failed `import picamera2` says is missing, and where it comes from, on one line.

    libcamera's Python bindings exist only as an apt package, so a virtualenv sees them (and apt's
    picamera2) only when it was made with --system-site-packages.
    """
    venv = "the virtualenv must be made with --system-site-packages to see apt's packages"
    if exc.name == "picamera2":
        return f"picamera2 is not installed: apt install python3-picamera2, and {venv} (scripts/bootstrap pi)"
    if exc.name == "libcamera":
        return (
            "libcamera's Python bindings are missing (No module named 'libcamera'): they come only from "
            f"apt's python3-libcamera (pulled in by python3-picamera2), and {venv} (scripts/bootstrap pi)"
        )
    detail = " ".join(str(exc).split())
    if exc.name:
        return f"picamera2 cannot be imported: {detail}: apt install python3-picamera2, and {venv}"
    return f"picamera2 cannot be imported: {detail}"


class Picamera2Source(SourceBase):
    """A Raspberry Pi camera through picamera2, reading the Y plane of a YUV420 stream as the gray frame."""

    def __init__(self, *, width: int = 640, height: int = 480, fps: int = 15, camera_num: int = 0) -> None:
        check_size(width, height, fps)
        self.width, self.height, self.fps = width, height, fps
        self.camera_num = camera_num
        self.name = f"camera picamera2:{camera_num}"
        self._cam: Any = None
        self._y_shape = (height, width)
        self._out: Frame = np.empty((height, width), np.uint8)

    def open(self) -> None:
        """Start the camera with a YUV420 main stream at the configured size and frame rate."""
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError(self.name, picamera2_import_problem(exc)) from exc
        frame_us = round(1_000_000 / self.fps)
        try:
            cam = Picamera2(self.camera_num)
        except Exception as exc:  # picamera2 raises IndexError/RuntimeError when there is no camera
            raise CameraError(self.name, f"cannot open: {exc}") from exc
        try:
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
            )
            cam.configure(config)
            width, height = cam.camera_configuration()["main"]["size"]
            cam.start()
        except Exception as exc:
            cam.close()
            raise CameraError(self.name, f"cannot start: {exc}") from exc
        self._cam = cam
        self._y_shape = (int(height), int(width))
        log.info("%s: opened, Y plane %dx%d@%d", self.name, width, height, self.fps)

    def read(self) -> Frame:
        """The next frame: the Y plane without stride padding, resized only if libcamera changed the size."""
        cam = self._cam
        if cam is None:
            raise CameraError(self.name, "read before open")
        try:
            planes = cam.capture_array("main")
        except Exception as exc:
            raise CameraError(self.name, f"read failed: {exc}") from exc
        height, width = self._y_shape
        luma = planes[:height, :width]
        if luma.shape == self._out.shape:
            np.copyto(self._out, luma)
            return self._out
        return np.asarray(
            cv2.resize(luma, (self.width, self.height), dst=self._out, interpolation=cv2.INTER_AREA),
            np.uint8,
        )

    def close(self) -> None:
        """Stop and release the camera; safe to call more than once."""
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()


def self_test(source: FrameSource, *, fps: int) -> str:
    """Open `source`, read one frame and describe it as 'WIDTHxHEIGHT@FPS'; CameraError when that fails."""
    with source:
        frame = source.read()
        if frame.ndim != 2 or frame.dtype != np.uint8 or frame.size == 0:
            raise CameraError(source.name, f"unusable frame: shape {frame.shape}, dtype {frame.dtype}")
        height, width = frame.shape
    return f"{width}x{height}@{fps}"


class Camera:
    """Supervises a frame source: reports a failure once, reopens it with capped exponential backoff."""

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_fault: Callable[[CameraError], None] | None = None,
        on_recover: Callable[[], None] | None = None,
    ) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self._open_source = open_source
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._on_fault = on_fault
        self._on_recover = on_recover
        self.faulted = False

    def frames(self, stop: threading.Event) -> Generator[Frame, None, None]:
        """Yield frames until `stop` is set, riding out device failures; a frame is valid until the next."""
        delay = self._backoff_initial_s
        while not stop.is_set():
            source: FrameSource | None = None
            try:
                source = self._open_source()
                source.open()
                while not stop.is_set():
                    frame = source.read()
                    if self.faulted:
                        delay = self._backoff_initial_s
                        self._recovered(source.name)
                    yield frame
            except CameraError as exc:
                self._fault(exc)
            finally:
                if source is not None:
                    self._close(source)
            if stop.is_set():
                break
            log.debug("camera: reopening in %.3g s", delay)
            stop.wait(delay)
            delay = min(delay * 2, self._backoff_max_s)

    def _fault(self, exc: CameraError) -> None:
        if self.faulted:
            log.debug("camera still failing: %s", exc)
            return
        self.faulted = True
        log.error("camera failed: %s", exc)
        if self._on_fault is not None:
            try:
                self._on_fault(exc)
            except Exception:
                log.exception("camera on_fault callback failed")

    def _recovered(self, name: str) -> None:
        self.faulted = False
        log.info("%s: recovered", name)
        if self._on_recover is not None:
            try:
                self._on_recover()
            except Exception:
                log.exception("camera on_recover callback failed")

    @staticmethod
    def _close(source: FrameSource) -> None:
        try:
            source.close()
        except Exception:
            log.exception("%s: close failed", source.name)
