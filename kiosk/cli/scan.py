"""`kiosk scan PATH... [--json]`: decode the QR codes in image files, one line per image."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from kiosk.scanner import Code, Frame, Scanner


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def read_gray(path: Path) -> Frame:
    """The image at path as an 8-bit grayscale frame; ValueError saying why when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from exc
    if not data:
        raise ValueError("empty file")
    try:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        raise ValueError(f"cannot decode image: {exc}") from exc
    if frame is None:
        raise ValueError("not an image OpenCV can read")
    return np.asarray(frame, np.uint8)


def code_json(code: Code) -> dict[str, str | None]:
    """One code as in the --json contract."""
    data = base64.b64encode(code.data).decode("ascii")
    return {"text": code.text, "bytes_b64": data, "decoder": code.decoder}


def code_human(code: Code) -> str:
    """One code for people: its quoted text, or its size when the text is unknown."""
    if code.text is None:
        return f"{code.decoder} <{len(code.data)} bytes, text unknown>"
    return f"{code.decoder} {json.dumps(code.text, ensure_ascii=False)}"


def run_scan(
    paths: list[Path],
    *,
    as_json: bool,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = _stderr,
) -> int:
    """Decode each image and print one line for it; exit status 1 if any file could not be read."""
    scanner = Scanner()
    status = 0
    for path in paths:
        try:
            frame = read_gray(path)
        except ValueError as exc:
            status = 1
            if as_json:
                out(json.dumps({"path": str(path), "error": str(exc)}))
            else:
                err(f"{path}: error: {exc}")
            continue
        start = time.perf_counter()
        codes = scanner(frame)
        ms = round((time.perf_counter() - start) * 1000, 3)
        if as_json:
            out(json.dumps({"path": str(path), "codes": [code_json(c) for c in codes], "ms": ms}))
        elif codes:
            out(f"{path}: {len(codes)} code{'s' if len(codes) > 1 else ''} in {ms:.1f} ms: "
                + "; ".join(code_human(c) for c in codes))
        else:
            out(f"{path}: no code ({ms:.1f} ms)")
    return status
