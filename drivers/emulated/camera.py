"""Emulated camera: plays a directory of images, one image, or a video file, as a `FrameSource`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drivers.camera import CameraError, Frame, SourceBase, ToGray, check_size

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pbm", ".pnm", ".tif", ".tiff", ".webp"}
)


class Pacer:
    """Holds frames to a fixed rate on the monotonic clock; due times advance by the period, so no drift."""

    def __init__(
        self,
        fps: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def reset(self) -> None:
        """Start a new schedule at the next frame."""
        self._due = None

    def wait(self) -> None:
        """Return when the next frame is due."""
        now = self._clock()
        if self._due is None or now - self._due > self._period:
            # First frame, or more than a frame behind: restart the schedule rather than burst to catch up.
            self._due = now
        elif self._due > now:
            self._sleep(self._due - now)
        self._due += self._period


class FileSource(SourceBase):
    """Emulated camera: plays a directory of images, one image, or a video file, as gray frames."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 15,
        loop: bool = True,
        realtime: bool = True,
    ) -> None:
        check_size(width, height, fps)
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
        self.name = f"camera files:{self.path}"
        self._pacer = Pacer(fps) if realtime else None
        self._to_gray = ToGray(width, height)
        self._images: list[Path] = []
        self._index = 0
        self._video: cv2.VideoCapture | None = None
        self._bgr: Any = None
        self._open = False

    def open(self) -> None:
        """List the images or open the video; CameraError when there is nothing to play."""
        self.close()
        if self.path.is_dir():
            self._images = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
            if not self._images:
                raise CameraError(self.name, "no images in directory")
        elif self.path.is_file() and self.path.suffix.lower() in IMAGE_EXTENSIONS:
            self._images = [self.path]
        elif self.path.is_file():
            self._video = self._open_video()
        else:
            raise CameraError(self.name, "no such file or directory")
        self._index = 0
        self._open = True
        if self._pacer is not None:
            self._pacer.reset()

    def read(self) -> Frame:
        """The next frame, gray at the configured size and paced when realtime; CameraError at the end."""
        if not self._open:
            raise CameraError(self.name, "read before open")
        image = self._next_video_frame() if self._video is not None else self._next_image()
        frame = self._to_gray(image)
        if self._pacer is not None:
            self._pacer.wait()
        return frame

    def close(self) -> None:
        """Release the video and forget the playlist; safe to call more than once."""
        self._open = False
        self._images = []
        video, self._video = self._video, None
        if video is not None:
            video.release()

    def _next_image(self) -> Frame:
        while self._images:
            if self._index >= len(self._images):
                if not self.loop:
                    raise CameraError(self.name, "end of input")
                self._index = 0
            path = self._images[self._index]
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                log.warning("%s: skipping unreadable image %s", self.name, path.name)
                del self._images[self._index]
                continue
            self._index += 1
            return np.asarray(image, np.uint8)
        raise CameraError(self.name, "no readable images")

    def _open_video(self) -> cv2.VideoCapture:
        try:
            video = cv2.VideoCapture(str(self.path))
        except cv2.error as exc:
            raise CameraError(self.name, f"cannot open video: {exc}") from exc
        if not video.isOpened():
            video.release()
            raise CameraError(self.name, "cannot open video")
        return video

    def _next_video_frame(self) -> Frame:
        assert self._video is not None
        ok, image = self._video.read(self._bgr)
        if not ok:
            if not self.loop:
                raise CameraError(self.name, "end of input")
            # Reopening is more dependable than seeking back to frame 0 across containers.
            self._video.release()
            self._video = None
            self._video = self._open_video()
            ok, image = self._video.read(self._bgr)
            if not ok:
                raise CameraError(self.name, "video has no frames")
        self._bgr = image
        return np.asarray(image, np.uint8)
