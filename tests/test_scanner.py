"""Scanner: the union of zbar and zxing-cpp on photos and screens, honest texts, debounce, `kiosk scan`."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
import zxingcpp
from pyzbar import pyzbar
from pyzbar import wrapper as zbar_wrapper

from bench import screens
from bench.scan import DEFAULT_QR_DIR, ROTATIONS, Case, load_photos, rotate, score, zbar_alone, zxing_alone
from kiosk.cli.scan import run_scan
from kiosk.scanner import Code, Debouncer, Frame, Scanner, merge, scan, zxing_text

PASS = "CKP1.eyJ2IjoxLCJraWQiOiJvZmZpY2UtMSIsInBpZCI6IlAtMDAwMTcifQ.c2lnbmF0dXJlLW9mLXRoZS1vZmZpY2U"
TOKEN = "HCT1.eyJ2IjoxLCJraWQiOiJoY2EtMSIsInN0IjoiZ3JlZW4ifQ.c2lnbmF0dXJlLW9mLWhlYWx0aA"


def _photo_categories() -> list[str]:
    return sorted({p.parent.name for p in DEFAULT_QR_DIR.rglob("*.png")}) if DEFAULT_QR_DIR.is_dir() else []


@pytest.fixture(scope="module")
def photos() -> list[Case]:
    if not DEFAULT_QR_DIR.is_dir():
        pytest.skip(f"{DEFAULT_QR_DIR} is absent")
    return load_photos(DEFAULT_QR_DIR)


@pytest.fixture(scope="module")
def shared_scanner() -> Scanner:
    return Scanner()


def render(*contents: str | bytes, module: int = 5, size: tuple[int, int] = (480, 640)) -> Frame:
    """Clean codes side by side on a white frame."""
    frame = np.full(size, 255, np.uint8)
    x = 20
    for content in contents:
        qr = segno.make(content, error="m", micro=False)
        matrix = np.pad(np.asarray(qr.matrix, dtype=np.uint8), 4)
        code = np.kron(np.where(matrix == 1, 0, 255), np.ones((module, module))).astype(np.uint8)
        frame[20 : 20 + code.shape[0], x : x + code.shape[1]] = code
        x += code.shape[1]
    return frame


def assert_union_read(cases: list[Case], decode: Scanner) -> int:
    """Each code zbar or zxing-cpp alone reads, the scanner reads, in every rotation; no text is wrong."""
    misses, wrong, union_total = [], [], 0
    for case in cases:
        for degrees in ROTATIONS:
            frame = rotate(case.frame, degrees)
            union = score(zbar_alone(frame), case.expected)[0] | score(zxing_alone(frame), case.expected)[0]
            found, n_wrong, _ = score([c.text for c in decode(frame)], case.expected)
            union_total += len(union)
            if union - found:
                misses.append(f"{case.name}@{degrees}: {sorted(union - found)}")
            if n_wrong:
                wrong.append(f"{case.name}@{degrees}")
    assert not misses, f"scanner missed codes one decoder alone reads: {misses}"
    assert not wrong, f"scanner returned wrong texts: {wrong}"
    return union_total


@pytest.mark.parametrize("category", _photo_categories() or ["(no photo set)"])
def test_union_on_photos(photos: list[Case], shared_scanner: Scanner, category: str) -> None:
    cases = [c for c in photos if c.category == category]
    assert cases, f"no photos with expected texts in {category}"
    assert assert_union_read(cases, shared_scanner) > 0


@pytest.mark.parametrize("category", [c for c in screens.CATEGORIES if c != "empty"])
def test_union_on_rendered_screens(shared_scanner: Scanner, category: str) -> None:
    cases = [Case("screens", category, f"{category}-{i}", f, frozenset(t))
             for i, (f, t) in enumerate(screens.generate(category, 8, seed=11))]
    assert assert_union_read(cases, shared_scanner) > 0


def test_empty_screen_frames_give_nothing(shared_scanner: Scanner) -> None:
    for frame, expected in screens.generate("empty", 6, seed=11):
        assert expected == []
        assert shared_scanner(frame) == []
    assert scan(np.zeros((480, 640), np.uint8)) == []
    assert scan(np.full((480, 640), 200, np.uint8)) == []


def test_screens_are_deterministic_and_640x480() -> None:
    first, again = screens.generate("glare", 2, seed=3), screens.generate("glare", 2, seed=3)
    assert [t for _, t in first] == [t for _, t in again]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again, strict=True))
    assert all(f.shape == (480, 640) and f.dtype == np.uint8 for f, _ in first)
    assert first[0][1] != screens.generate("glare", 1, seed=4)[0][1]


def test_two_codes_side_by_side_are_both_returned() -> None:
    codes = scan(render(TOKEN, PASS, module=3))
    assert sorted(c.text for c in codes if c.text) == sorted([TOKEN, PASS])
    assert {c.data for c in codes} == {TOKEN.encode(), PASS.encode()}


def test_same_code_twice_is_returned_once() -> None:
    codes = scan(render("P-00017", "P-00017"))
    assert [c.data for c in codes] == [b"P-00017"]


def test_non_utf8_payload_keeps_its_bytes_and_has_no_text() -> None:
    payload = b"\xff\xfe\x00\x80abc\xc3"
    codes = scan(render(payload))
    assert [c.data for c in codes] == [payload]
    assert codes[0].text is None


@pytest.mark.parametrize(
    ("content", "data", "text"),
    [
        ("日本語テキスト", "日本語テキスト".encode("shift_jis"), "日本語テキスト"),
        ("ﾃﾞｻﾞｲﾝ漢字".encode("shift_jis"), "ﾃﾞｻﾞｲﾝ漢字".encode("shift_jis"), "ﾃﾞｻﾞｲﾝ漢字"),
        ("Grüße 测试".encode(), "Grüße 测试".encode(), "Grüße 测试"),
    ],
)
def test_charset_payloads_give_exact_text_or_none(content: str | bytes, data: bytes, text: str) -> None:
    codes = scan(render(content))
    assert [c.data for c in codes] == [data]
    assert codes[0].text in (None, text)


def test_zbar_hands_out_raw_bytes_where_pyzbar_transcodes() -> None:
    zbar = Scanner()._zbar
    assert zbar.raw
    frame = render("日本語テキスト")
    assert [data for data, _ in zbar(frame)] == ["日本語テキスト".encode("shift_jis")]
    transcoded = pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])
    assert [r.data for r in transcoded] == ["日本語テキスト".encode()]


def test_merge_prefers_zxing_and_keeps_only_certain_zbar_texts() -> None:
    square = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))
    zx = [(Code(b"caf\xe9", "café", "zxing"), square, "café")]
    merged = merge(zx, [(b"caf\xc3\xa9", (300.0, 300.0)), (b"other", (50.0, 50.0))], zbar_raw=True)
    assert merged == [Code(b"caf\xe9", "café", "zxing")]
    sjis, check = b"\x93\xfa\x96{", b"ok \xe2\x9c\x93"
    alone = [(sjis, (1.0, 1.0)), (check, (2.0, 2.0)), (check, (3.0, 3.0))]
    assert merge([], alone, zbar_raw=True) == [
        Code(b"\x93\xfa\x96{", None, "zbar"), Code(b"ok \xe2\x9c\x93", "ok ✓", "zbar")
    ]
    assert merge([], alone[1:], zbar_raw=False) == [Code(b"ok \xe2\x9c\x93", None, "zbar")]


def test_zxing_text_is_dropped_when_it_may_be_a_charset_guess() -> None:
    kind = zxingcpp.ContentType
    assert zxing_text(kind.Binary, "\x01\x02hi", b"\x01\x02hi") == "\x01\x02hi"
    assert zxing_text(kind.Binary, "ÿþ", b"\xff\xfe") is None
    assert zxing_text(kind.Mixed, "\x01AD:阿", b"\x01AD:\xb0\xa2") == "\x01AD:阿"
    assert zxing_text(kind.Mixed, "\x01é", b"\x01\xe9") is None
    assert zxing_text(kind.Text, "na\x93ve", b"na\x93ve") is None
    assert zxing_text(kind.Text, "café", b"caf\xe9") == "café"
    assert zxing_text(kind.UnknownECI, "x", b"x") is None


def test_non_contiguous_views_decode_like_copies() -> None:
    big = np.full((960, 1280), 255, np.uint8)
    big[::2, ::2] = render(PASS, module=3)
    views = [big[::2, ::2], render(PASS, module=3)[:, 10:630], np.rot90(render(PASS, module=3))]
    for view in views:
        assert not view.flags.c_contiguous
        assert [c.text for c in scan(view)] == [PASS]
        assert scan(view) == scan(np.ascontiguousarray(view))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640), np.float32), np.zeros((0, 0), np.uint8),
     np.zeros((0, 640), np.uint8), np.zeros(640, np.uint8), [[0, 1], [1, 0]], None],
)
def test_anything_but_a_2d_uint8_frame_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        scan(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 1), (1, 640), (480, 1), (3, 3), (21, 21)])
def test_tiny_frames_do_not_raise(shape: tuple[int, int]) -> None:
    assert scan(np.zeros(shape, np.uint8)) == []


def test_a_failing_decoder_is_logged_and_the_other_still_reads(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("decoder crashed")

    frame = render(PASS, module=3)
    scanner = Scanner()
    monkeypatch.setattr(zxingcpp, "read_barcodes", boom)
    with caplog.at_level(logging.ERROR, logger="kiosk.scanner"):
        assert [(c.text, c.decoder) for c in scanner(frame)] == [(PASS, "zbar")]
    assert "zxing-cpp failed" in caplog.text
    monkeypatch.undo()
    monkeypatch.setattr(zbar_wrapper, "zbar_scan_image", boom)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kiosk.scanner"):
        assert [(c.text, c.decoder) for c in scanner(frame)] == [(PASS, "zxing")]
    assert "zbar failed" in caplog.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_debouncer_reports_a_code_once_while_it_stays_and_again_after_absence() -> None:
    clock = FakeClock()
    debounce = Debouncer(forget_after_s=2.0, clock=clock)
    a, b = Code(b"A", "A", "zxing"), Code(b"B", None, "zbar")
    assert debounce.feed([a, a]) == [a]
    for _ in range(20):
        clock.now += 0.5
        assert debounce.feed([a]) == []
    clock.now += 0.1
    assert debounce.feed([a, b]) == [b]
    clock.now += 1.9
    assert debounce.feed([b]) == []
    clock.now += 0.1
    assert debounce.feed([a, b]) == [a]
    clock.now += 5.0
    assert debounce.feed([]) == []
    assert debounce.feed([b, a]) == [b, a]


def test_run_scan_json_contract(tmp_path: Path) -> None:
    good, blank = tmp_path / "pass.png", tmp_path / "blank.png"
    cv2.imwrite(str(good), render(PASS, "\xff\x80 binary".encode("latin-1"), module=3))
    cv2.imwrite(str(blank), np.full((480, 640), 128, np.uint8))
    garbage = tmp_path / "notes.png"
    garbage.write_text("not an image")
    missing = tmp_path / "missing.png"
    lines: list[str] = []
    errors: list[str] = []
    status = run_scan([good, missing, garbage, blank], as_json=True, out=lines.append, err=errors.append)
    assert status == 1
    results = [json.loads(line) for line in lines]
    assert [r["path"] for r in results] == [str(good), str(missing), str(garbage), str(blank)]
    codes = results[0]["codes"]
    assert {base64.b64decode(c["bytes_b64"]) for c in codes} == {PASS.encode(), b"\xff\x80 binary"}
    assert {c["text"] for c in codes} == {PASS, None}
    assert all(c["decoder"] in ("zxing", "zbar") for c in codes)
    assert isinstance(results[0]["ms"], float) and results[0]["ms"] >= 0
    assert "error" in results[1] and "error" in results[2] and "codes" not in results[1]
    assert results[3]["codes"] == [] and "error" not in results[3]
    assert run_scan([good, blank], as_json=True, out=lines.append, err=errors.append) == 0


def test_run_scan_human_lines(tmp_path: Path) -> None:
    good = tmp_path / "token.png"
    cv2.imwrite(str(good), render(TOKEN, module=3))
    lines: list[str] = []
    errors: list[str] = []
    assert run_scan([good, tmp_path / "gone.png"], as_json=False, out=lines.append, err=errors.append) == 1
    assert len(lines) == 1 and str(good) in lines[0] and TOKEN in lines[0]
    assert len(errors) == 1 and "gone.png" in errors[0]
