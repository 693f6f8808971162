"""QR decoding of one grayscale frame: the union of what zxing-cpp and zbar read."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp
from pyzbar import wrapper as zbar

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
Quad = tuple[tuple[float, float], ...]

_Y800 = 0x30303859  # fourcc "Y800": 8-bit grayscale, what zbar scans natively
_QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCodeModel2)
_ContentType = zxingcpp.ContentType
_TRUSTED_ZXING = frozenset({_ContentType.Text, _ContentType.GS1, _ContentType.ISO15434})


@dataclass(frozen=True)
class Code:
    """One decoded QR code: raw payload, its text when certain, and which decoder read it."""

    data: bytes
    text: str | None
    decoder: str


def check_frame(frame: object) -> Frame:
    """Return frame if it is a non-empty 2-D uint8 array, else raise ValueError."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be a 2-D uint8 array, not {frame.ndim}-D {frame.dtype}")
    if frame.size == 0:
        raise ValueError(f"frame is empty: shape {frame.shape}")
    return frame


def _plausible(text: str) -> bool:
    """False when text holds C1 controls, the mark of bytes rendered in a guessed wrong charset."""
    return not any("\x80" <= ch <= "\x9f" for ch in text)


def zxing_text(content_type: zxingcpp.ContentType, text: str, data: bytes) -> str | None:
    """zxing's plain text when it certainly renders the payload, else None."""
    if content_type in _TRUSTED_ZXING:
        return text if _plausible(text) else None
    if content_type == zxingcpp.ContentType.Mixed:
        # Binary segments are rendered byte by byte as Latin-1, which is exact only for ASCII bytes.
        return text if not any("\x80" <= ch <= "\xff" for ch in text) else None
    if content_type == zxingcpp.ContentType.Binary:
        return text if text.encode() == data and _plausible(text) else None
    return None


def raw_text(data: bytes) -> str | None:
    """data as strict UTF-8 text, or None when it is not certainly text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _plausible(text) else None


def _inside(point: tuple[float, float], quad: Quad) -> bool:
    """True if point lies inside the convex quadrilateral quad (corners in order)."""
    px, py = point
    sign = 0.0
    for i, (ax, ay) in enumerate(quad):
        bx, by = quad[(i + 1) % len(quad)]
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        if cross * sign < 0:
            return False
        if cross != 0:
            sign = cross
    return True


class _Zbar:
    """A zbar image scanner for QR only, returning raw payload bytes, created once."""

    def __init__(self) -> None:
        self._scanner = zbar.zbar_image_scanner_create()
        self._image = zbar.zbar_image_create()
        if not self._scanner or not self._image:
            raise RuntimeError("zbar: cannot create scanner")
        enable = zbar.ZBarConfig.CFG_ENABLE
        zbar.zbar_image_scanner_set_config(self._scanner, zbar.ZBarSymbol.NONE, enable, 0)
        zbar.zbar_image_scanner_set_config(self._scanner, zbar.ZBarSymbol.QRCODE, enable, 1)
        zbar.zbar_image_set_format(self._image, _Y800)
        self.raw = self._enable_binary()
        if not self.raw:
            log.warning("zbar has no qrcode.binary: zbar-only codes will carry no text")

    def _enable_binary(self) -> bool:
        """Ask zbar for payload bytes instead of text transcoded from a guessed charset."""
        sym, cfg, val = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        refs = ctypes.byref(sym), ctypes.byref(cfg), ctypes.byref(val)
        if zbar.zbar_parse_config(b"qrcode.binary=1", *refs) != 0:
            return False
        return bool(zbar.zbar_image_scanner_set_config(self._scanner, sym.value, cfg.value, val.value) == 0)

    def __call__(self, frame: Frame) -> list[tuple[bytes, tuple[float, float]]]:
        """Scan a C-contiguous frame; each code as (bytes, centre of its corners)."""
        height, width = frame.shape
        zbar.zbar_image_set_size(self._image, width, height)
        zbar.zbar_image_set_data(self._image, frame.ctypes.data, frame.size, None)
        try:
            n_found = zbar.zbar_scan_image(self._scanner, self._image)
            if n_found < 0:
                log.warning("zbar cannot scan a %s frame", frame.shape)
            if n_found <= 0:
                return []
            found: list[tuple[bytes, tuple[float, float]]] = []
            symbol = zbar.zbar_image_first_symbol(self._image)
            while symbol:
                data = ctypes.string_at(
                    zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol)
                )
                n = zbar.zbar_symbol_get_loc_size(symbol)
                xs = [zbar.zbar_symbol_get_loc_x(symbol, i) for i in range(n)] or [0]
                ys = [zbar.zbar_symbol_get_loc_y(symbol, i) for i in range(n)] or [0]
                found.append((data, (sum(xs) / len(xs), sum(ys) / len(ys))))
                symbol = zbar.zbar_symbol_next(symbol)
            return found
        finally:
            zbar.zbar_image_set_data(self._image, None, 0, None)

    def __del__(self) -> None:
        try:
            zbar.zbar_image_destroy(self._image)
            zbar.zbar_image_scanner_destroy(self._scanner)
        except Exception:  # interpreter shutdown may have torn the wrapper down already
            pass


class Scanner:
    """Decodes QR codes in grayscale frames with zxing-cpp and zbar; calls are serialised by a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zbar = _Zbar()
        self._buffer: Frame = np.empty((1, 1), np.uint8)
        self._masked: Frame = np.empty((1, 1), np.uint8)

    def _contiguous(self, frame: Frame) -> Frame:
        """frame itself if C-contiguous, else a copy in a buffer kept between calls."""
        if frame.flags.c_contiguous:
            return frame
        if self._buffer.shape != frame.shape:
            self._buffer = np.empty(frame.shape, np.uint8)
        np.copyto(self._buffer, frame)
        return self._buffer

    def _without(self, frame: Frame, quads: Iterable[Quad]) -> Frame:
        """A copy of frame, in a buffer kept between calls, with the codes zxing read painted over."""
        if self._masked.shape != frame.shape:
            self._masked = np.empty(frame.shape, np.uint8)
        np.copyto(self._masked, frame)
        for quad in quads:
            corners = np.array(quad, np.float32)
            centre = corners.mean(axis=0)
            grown = (corners - centre) * 1.06 + centre
            cv2.fillConvexPoly(self._masked, np.rint(grown).astype(np.int32), 128)
        return self._masked

    def _read_zxing(self, frame: Frame) -> list[tuple[Code, Quad, str]]:
        """zxing-cpp's codes with their corner quads and their plain text."""
        try:
            barcodes = zxingcpp.read_barcodes(frame, formats=_QR_FORMATS, text_mode=zxingcpp.TextMode.Plain)
        except Exception:
            log.exception("zxing-cpp failed on a %s frame", frame.shape)
            return []
        found: list[tuple[Code, Quad, str]] = []
        for barcode in barcodes:
            data, text = barcode.bytes, barcode.text
            p = barcode.position
            corners = (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
            quad = tuple((float(c.x), float(c.y)) for c in corners)
            found.append((Code(data, zxing_text(barcode.content_type, text, data), "zxing"), quad, text))
        return found

    def _read_zbar(self, frame: Frame) -> list[tuple[bytes, tuple[float, float]]]:
        """zbar's codes, or none if it fails."""
        try:
            return self._zbar(frame)
        except Exception:
            log.exception("zbar failed on a %s frame", frame.shape)
            return []

    def __call__(self, frame: Frame) -> list[Code]:
        """All QR codes in frame, one per distinct payload, zxing's reading first."""
        check_frame(frame)
        with self._lock:
            image = self._contiguous(frame)
            from_zxing = self._read_zxing(image)
            if from_zxing:
                # zbar would spend most of its time decoding these again; codes only it reads lie elsewhere.
                image = self._without(image, (quad for _, quad, _ in from_zxing))
            from_zbar = self._read_zbar(image)
        return merge(from_zxing, from_zbar, zbar_raw=self._zbar.raw)


def merge(
    from_zxing: Sequence[tuple[Code, Quad, str]],
    from_zbar: Sequence[tuple[bytes, tuple[float, float]]],
    *,
    zbar_raw: bool,
) -> list[Code]:
    """Union of both readings: a zbar code is dropped when zxing read the same symbol or payload."""
    codes: list[Code] = []
    seen: set[bytes] = set()
    for code, _, text in from_zxing:
        if code.data not in seen:
            seen.add(code.data)
            # zbar hands out ECI payloads transcoded to UTF-8, so also know them by that form.
            seen.add(text.encode())
            codes.append(code)
    for data, centre in from_zbar:
        if data in seen or any(_inside(centre, quad) for _, quad, _ in from_zxing):
            continue
        seen.add(data)
        codes.append(Code(data, raw_text(data) if zbar_raw else None, "zbar"))
    return codes


_shared = Scanner()


def scan(frame: Frame) -> list[Code]:
    """Decode frame with the module's shared Scanner."""
    return _shared(frame)


class Debouncer:
    """Turns a code seen in consecutive frames into one event; it is new again after an absence."""

    def __init__(self, *, forget_after_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._forget_after_s = forget_after_s
        self._clock = clock
        self._last_seen: dict[bytes, float] = {}

    def feed(self, codes: Iterable[Code]) -> list[Code]:
        """The codes in this frame that were not seen within the last forget_after_s."""
        now = self._clock()
        fresh: list[Code] = []
        for code in codes:
            last = self._last_seen.get(code.data)
            if last is None or now - last >= self._forget_after_s:
                fresh.append(code)
            self._last_seen[code.data] = now
        stale = [data for data, seen in self._last_seen.items() if now - seen >= self._forget_after_s]
        for data in stale:
            del self._last_seen[data]
        return fresh
