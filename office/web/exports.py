"""Entries as a spreadsheet: one table (header and rows, times local, words in the reader's language),
written as CSV that Excel opens with its Chinese (a UTF-8 BOM) or as an XLSX workbook.

The CSV is encoded a page at a time, so it can be streamed. The XLSX is written in openpyxl's write-only
mode into a temporary file that spills to disk past `SPOOL_BYTES`: an XLSX is a zip, complete only at the end.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from checkpoint.entry import Entry
from office.web.i18n import Lang, translate

BOM = "\ufeff"
SPOOL_BYTES = 8 << 20
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_XLSX_ROWS = 1_048_575  # a sheet's rows, but for the header


class TooManyRows(ValueError):
    """More entries than a sheet holds: the CSV has no such limit."""


def offset_label(tz: ZoneInfo, at: datetime) -> str:
    """'UTC+08:00' for the zone's offset at `at`."""
    offset = at.astimezone(tz).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


class EntriesTable:
    """The columns of an entries export: the header and each entry's row, times local in `tz`."""

    def __init__(self, tz: ZoneInfo, lang: Lang) -> None:
        self.tz, self.lang = tz, lang

    def t(self, key: str) -> str:
        return translate(self.lang, key)

    def header(self, at: datetime) -> list[str]:
        """The header row; the time column names the zone's offset at `at`."""
        t = self.t
        return [f"{t('at')} ({offset_label(self.tz, at)})", t("site"), t("kiosk"), "seq",
                t("entries.direction"), t("entries.decision"), "decision", t("entries.reasons"), "reasons",
                t("alert.body"), t("entries.pid"), t("alert.colour"), "cat", t("alert.hh"), t("alert.person"),
                t("alert.entry")]

    def row(self, e: Entry) -> list[Any]:
        t = self.t
        reasons = [str(r) for r in e.reasons]
        return [
            e.ts.astimezone(self.tz).strftime(LOCAL_FORMAT), e.site, e.kiosk, e.seq,
            t(f"entries.{e.direction}"), t(f"decision.{e.decision}"), e.decision,
            "；".join(t(f"reason.{r}") for r in reasons), ";".join(reasons),
            f"{e.temperature.body_c:.1f}" if e.temperature else "",
            _cell(e.pass_.pid) if e.pass_ else "", t(f"colour.{e.pass_.cat}") if e.pass_ else "",
            e.pass_.cat if e.pass_ else "", _cell(e.pass_.hh or "") if e.pass_ else "",
            _cell(e.person.masked) if e.person else "", e.id,
        ]

    def csv_head(self, at: datetime) -> bytes:
        """The BOM and the header row."""
        return (BOM + _lines([self.header(at)])).encode("utf-8")

    def csv_rows(self, entries: Iterable[Entry]) -> bytes:
        return _lines([self.row(e) for e in entries]).encode("utf-8")

    def xlsx(self, at: datetime, pages: Iterable[list[Entry]]) -> IO[bytes]:
        """The workbook, read from its start: one sheet, the header frozen, temperatures as numbers."""
        from openpyxl import Workbook  # lazily: it loads numpy, which the office otherwise does without

        book = Workbook(write_only=True)
        sheet = book.create_sheet(self.t("entries"))
        sheet.freeze_panes = "A2"
        sheet.append(self.header(at))
        body_column = 9
        written = 0
        for page in pages:
            written += len(page)
            if written > MAX_XLSX_ROWS:
                raise TooManyRows(f"more than {MAX_XLSX_ROWS} entries: narrow the filters or export CSV")
            for e in page:
                row = self.row(e)
                if row[body_column]:
                    row[body_column] = float(row[body_column])
                sheet.append(row)
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the response closes it)
        book.save(out)
        out.seek(0)
        return out


def _lines(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
