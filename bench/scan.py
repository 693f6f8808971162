"""Scanner bench: codes read by pyzbar alone, zxing-cpp alone, their union and kiosk.scanner; wrong texts; ms.

Run from the project root: .venv/bin/python -m bench.scan [--qr-dir ../shared/testdata/qr] [--frames 25]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from pyzbar import pyzbar

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import screens
from kiosk.scanner import Frame, Scanner

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_QR_DIR = PROJECT.parent / "shared" / "testdata" / "qr"
ROTATIONS = (0, 90, 180, 270)
_CV2_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}
_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCodeModel2)

Decoder = Callable[[Frame], list[str | None]]


@dataclass(frozen=True)
class Case:
    """One image and the exact texts of the codes it holds."""

    group: str
    category: str
    name: str
    frame: Frame
    expected: frozenset[str]


def zbar_alone(frame: Frame) -> list[str | None]:
    """pyzbar as an application would call it: QR only, its UTF-8 text (None if it is not UTF-8)."""
    texts: list[str | None] = []
    for result in pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE]):
        try:
            texts.append(result.data.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
    return texts


def zxing_alone(frame: Frame) -> list[str | None]:
    """zxing-cpp with its default options, QR only, plain text (its HRI mode escapes control characters)."""
    barcodes = zxingcpp.read_barcodes(frame, formats=_QR, text_mode=zxingcpp.TextMode.Plain)
    return [barcode.text for barcode in barcodes]


def scanner_decoder(scanner: Scanner) -> Decoder:
    """kiosk.scanner as a decoder of texts (None where it does not vouch for one)."""
    return lambda frame: [code.text for code in scanner(frame)]


def rotate(frame: Frame, degrees: int) -> Frame:
    """frame turned counter-clockwise by 0, 90, 180 or 270 degrees (a new contiguous array)."""
    return frame.copy() if degrees == 0 else np.asarray(cv2.rotate(frame, _CV2_ROTATE[degrees]), np.uint8)


# ZXing lists only the outer code of this "double QR"; a second, red code is printed inside it.
# Its Shift-JIS text, as zxing-cpp reads it, is added so that reading it is not counted as wrong.
UNLISTED = {("qrcode-2", "16.png"): "[内側QRコード]\r\n\r\n*ダブルQR*\r\nhttp://d-qr.net/ex/"}


def read_expected(png: Path) -> frozenset[str] | None:
    """The exact expected texts for png: N.txt beside N.png, or N.multi-expected.json; None if neither."""
    txt, multi = png.with_suffix(".txt"), png.with_suffix(".multi-expected.json")
    if txt.is_file():
        texts = {txt.read_bytes().decode("utf-8")}
    elif multi.is_file():
        texts = set(json.loads(multi.read_bytes().decode("utf-8")))
    else:
        return None
    unlisted = UNLISTED.get((png.parent.name, png.name))
    return frozenset(texts | ({unlisted} if unlisted else set()))


def load_photos(qr_dir: Path) -> list[Case]:
    """Every PNG under qr_dir that has expected texts, grouped by its folder."""
    cases = []
    for png in sorted(qr_dir.rglob("*.png"), key=lambda p: (p.parent.name, len(p.stem), p.stem)):
        expected = read_expected(png)
        frame = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        if expected is not None and frame is not None:
            cases.append(Case("photos", png.parent.name, png.name, np.asarray(frame, np.uint8), expected))
    return cases


def load_screens(n: int, seed: int) -> list[Case]:
    """n rendered frames per screen category."""
    return [
        Case("screens", category, f"{category}-{i}", frame, frozenset(texts))
        for category in screens.CATEGORIES
        for i, (frame, texts) in enumerate(screens.generate(category, n, seed))
    ]


def score(texts: Sequence[str | None], expected: frozenset[str]) -> tuple[set[str], int, int]:
    """The expected texts found, the number of wrong texts and the number of codes without text."""
    wrong = sum(1 for t in texts if t is not None and t not in expected)
    return {t for t in texts if t in expected}, wrong, sum(1 for t in texts if t is None)


def timed(decoder: Decoder, frame: Frame) -> tuple[list[str | None], float]:
    """decoder's texts for frame and the milliseconds it took."""
    start = time.perf_counter()
    texts = decoder(frame)
    return texts, (time.perf_counter() - start) * 1000


@dataclass
class Row:
    """Counts and times for one (group, category, rotation)."""

    frames: int = 0
    codes: int = 0
    found: dict[str, int] = field(default_factory=dict)
    wrong: dict[str, int] = field(default_factory=dict)
    no_text: int = 0
    ms: dict[str, list[float]] = field(default_factory=dict)


Outcome = tuple[set[str], int, int, float]


def run(cases: Sequence[Case], scanner: Scanner) -> Iterator[tuple[Case, int, dict[str, Outcome]]]:
    """For each case and rotation: each decoder's found texts, wrong texts, text-less codes and ms."""
    decoders = {"zbar": zbar_alone, "zxing": zxing_alone, "scanner": scanner_decoder(scanner)}
    for case in cases:
        for degrees in ROTATIONS:
            frame = rotate(case.frame, degrees)
            results = {}
            for name, decoder in decoders.items():
                texts, ms = timed(decoder, frame)
                results[name] = (*score(texts, case.expected), ms)
            yield case, degrees, results


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile of values (0 for none)."""
    return float(np.percentile(values, q)) if values else 0.0


def tabulate(cases: Sequence[Case], scanner: Scanner) -> tuple[dict[tuple[str, str, int], Row], list[str]]:
    """Rows by (group, category, rotation), and the frames where the scanner missed a union code."""
    rows: dict[tuple[str, str, int], Row] = {}
    misses: list[str] = []
    for case, degrees, results in run(cases, scanner):
        row = rows.setdefault((case.group, case.category, degrees), Row())
        row.frames += 1
        row.codes += len(case.expected)
        union = results["zbar"][0] | results["zxing"][0]
        for name, (found, wrong, _, ms) in (*results.items(), ("union", (union, 0, 0, 0.0))):
            row.found[name] = row.found.get(name, 0) + len(found)
            row.wrong[name] = row.wrong.get(name, 0) + wrong
            row.ms.setdefault(name, []).append(ms)
        row.no_text += results["scanner"][2]
        if union - results["scanner"][0]:
            misses.append(f"{case.group}/{case.category}/{case.name} @{degrees}°")
    return rows, misses


def render(rows: dict[tuple[str, str, int], Row]) -> list[str]:
    """The rows as a Markdown table, with a total per group and rotation."""
    lines = [
        "| set | category | rot | frames | codes | zbar | zxing | union | scanner | no text "
        "| wrong zbar/zxing/scanner | ms zbar | ms zxing | ms scanner med | p95 |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    totals: dict[tuple[str, int], Row] = {}
    for (group, _, degrees), row in rows.items():
        total = totals.setdefault((group, degrees), Row())
        total.frames += row.frames
        total.codes += row.codes
        total.no_text += row.no_text
        for name in row.found:
            total.found[name] = total.found.get(name, 0) + row.found[name]
            total.wrong[name] = total.wrong.get(name, 0) + row.wrong[name]
            total.ms.setdefault(name, []).extend(row.ms[name])
    every = [*rows.items(), *(((group, "**all**", degrees), row) for (group, degrees), row in totals.items())]
    for (group, category, degrees), row in every:
        f, w, ms = row.found, row.wrong, row.ms
        lines.append(
            f"| {group} | {category} | {degrees} | {row.frames} | {row.codes} | {f['zbar']} | {f['zxing']} "
            f"| {f['union']} | {f['scanner']} | {row.no_text} | {w['zbar']}/{w['zxing']}/{w['scanner']} "
            f"| {statistics.median(ms['zbar']):.2f} | {statistics.median(ms['zxing']):.2f} "
            f"| {statistics.median(ms['scanner']):.2f} | {pct(ms['scanner'], 95):.2f} |"
        )
    return lines


def timing(rows: dict[tuple[str, str, int], Row]) -> list[str]:
    """Scanner ms on the 640×480 screen frames: empty, with codes, all."""
    empty = [ms for (g, c, _), r in rows.items() if g == "screens" and c == "empty" for ms in r.ms["scanner"]]
    coded = [ms for (g, c, _), r in rows.items() if g == "screens" and c != "empty" for ms in r.ms["scanner"]]
    lines = ["| 640×480 frames | frames | median ms | p95 ms | max ms |", "|---|--:|--:|--:|--:|"]
    for label, values in (("empty", empty), ("with codes", coded), ("all", empty + coded)):
        if values:
            median, p95 = statistics.median(values), pct(values, 95)
            lines.append(f"| {label} | {len(values)} | {median:.2f} | {p95:.2f} | {max(values):.2f} |")
    return lines


def machine() -> str:
    """Date, architecture, CPU model, core count, load and decoder versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, "
            f"load {load}; zxing-cpp {_version('zxing-cpp')}, pyzbar {_version('pyzbar')}, "
            f"numpy {np.__version__}, OpenCV {cv2.__version__}")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__.splitlines()[0])
    parser.add_argument("--qr-dir", type=Path, default=DEFAULT_QR_DIR, help="photo set with expected texts")
    parser.add_argument("--frames", type=int, default=25, help="rendered frames per screen category")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    cases = load_photos(args.qr_dir) if args.qr_dir.is_dir() else []
    if not cases:
        print(f"note: no photos with expected texts under {args.qr_dir}", file=sys.stderr)
    cases += load_screens(args.frames, args.seed)
    scanner = Scanner()
    for case in cases[:5]:
        scanner(case.frame)
    rows, misses = tabulate(cases, scanner)
    print(f"Machine: {machine()}\n")
    print("\n".join(render(rows)))
    print()
    print("\n".join(timing(rows)))
    if misses:
        print(f"\nscanner missed union codes in {len(misses)} frames: {', '.join(misses)}")
    return 1 if misses or any(r.wrong["scanner"] for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
