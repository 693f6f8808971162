"""The report PNG: a valid PNG set in the CJK font of Debian's fonts-noto-cjk, one row of charts per site,
and a 零报告 that is a different picture (big text, no empty chart)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fixtures.collector_data import load_day
from PIL import Image

from office.reports import png
from office.reports.daily import daily_report
from office.reports.render import PNG_DPI, PNG_SIZE_IN, render_png
from office.store.sqlite import SqliteStore

DAY = date(2026, 3, 19)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def image(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    opened = Image.open(io.BytesIO(data))
    opened.load()  # a truncated or corrupt PNG fails here
    return opened


def colours(picture: Image.Image) -> set[tuple[int, int, int]]:
    data = iter(picture.convert("RGB").tobytes())
    return set(zip(data, data, data, strict=True))


def test_the_report_is_set_in_the_noto_cjk_font() -> None:
    font = png.cjk_font()
    assert font is not None and font.is_file()
    assert "NotoSansCJK" in font.name
    assert png.font_families()[0].startswith("Noto Sans CJK")


def test_a_zero_report_is_a_different_picture_from_a_day_with_entries(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "office.sqlite") as store:
        load_day(store)
        day = daily_report(store, DAY, site="s1", tz="Asia/Shanghai", now=NOW)
        zero = daily_report(store, date(2026, 3, 10), site="s1", tz="Asia/Shanghai", now=NOW)
    assert not day.zero and zero.zero
    day_png, zero_png = render_png(day, {"s1": "幸福里社区"}), render_png(zero, {"s1": "幸福里社区"})
    assert day_png != zero_png
    size = (int(PNG_SIZE_IN[0] * PNG_DPI), int(PNG_SIZE_IN[1] * PNG_DPI))
    assert image(day_png).size == image(zero_png).size == size
    # the zero report is big red text on white: no blue entry bars, no green or orange gate bars
    zero_colours, day_colours = colours(image(zero_png)), colours(image(day_png))
    bars = {(0x4c, 0x72, 0xb0), (0x2e, 0x7d, 0x32), (0xef, 0x8f, 0x00)}
    assert bars <= day_colours
    assert not bars & zero_colours
    assert (0xc6, 0x28, 0x28) in zero_colours  # 零报告 in red


def test_a_missing_cjk_font_still_makes_a_png_and_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    png.cjk_font.cache_clear()
    monkeypatch.setattr(png, "CJK_FAMILIES", ("No Such Font CJK",))
    monkeypatch.setattr(png, "CJK_FONT_FILE", tmp_path / "absent.ttc")
    try:
        with SqliteStore(tmp_path / "office.sqlite") as store:
            zero = daily_report(store, DAY, site=None, tz="Asia/Shanghai", now=NOW)
        with caplog.at_level("WARNING"):
            data = render_png(zero)
        assert image(data).size[0] == int(PNG_SIZE_IN[0] * PNG_DPI)
        assert "fonts-noto-cjk" in caplog.text
    finally:
        png.cjk_font.cache_clear()
