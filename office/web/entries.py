"""The 出入记录 Entries page: the entries of a time window (default today in the report time zone), newest
first, filtered in the store and paged by key, 100 a page; and `/entries.csv`, the same filters as a CSV
that Excel opens with its Chinese and local times (UTF-8 BOM), streamed a page at a time (a month of a
big site never sits in memory), every export audited before its first byte.

`entry_routes(web)` gives the routes; app.py lists them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from checkpoint.entry import Entry, format_ts
from checkpoint.reasons import COLOURS, Reason
from office.store.base import Role, Store, User
from office.web.core import OfficeWeb
from office.web.exports import XLSX_TYPE, EntriesTable, TooManyRows, offset_label

OFFICE: tuple[Role, ...] = ("office", "admin")
PAGE = 100
EXPORT_PAGE = 1000
EXPORTS = ("csv", "xlsx")
DECISIONS = ("allow", "deny", "attention")
REASONS = tuple(reason.value for reason in Reason)
TEXT_FILTERS = ("site", "kiosk", "pid", "hh")
MAX_TEXT = 64


@dataclass
class Filters:
    """What the page and the export were asked for; `errors` are translation keys of refused fields."""

    start: datetime
    end: datetime
    text: dict[str, str | None] = field(default_factory=dict)
    decision: str | None = None
    reason: str | None = None
    cat: str | None = None
    after: tuple[datetime, str] | None = None
    errors: list[str] = field(default_factory=list)

    def query(self, *, local: ZoneInfo) -> dict[str, str]:
        """The filters as query parameters (times local, as the form shows them), without the page key."""
        values = {"from": _form_time(self.start, local), "to": _form_time(self.end, local),
                  **self.text, "decision": self.decision, "reason": self.reason, "cat": self.cat}
        return {k: v for k, v in values.items() if v}

    def audit(self) -> str:
        values = {"from": format_ts(self.start), "to": format_ts(self.end), **self.text,
                  "decision": self.decision, "reason": self.reason, "cat": self.cat}
        return json.dumps({k: v for k, v in values.items() if v}, sort_keys=True, ensure_ascii=False)


def _form_time(value: datetime, tz: ZoneInfo) -> str:
    local = value.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second or local.microsecond else "%Y-%m-%dT%H:%M")


def _local_time(text: str, tz: ZoneInfo) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def parse_filters(params: QueryParams, tz: ZoneInfo, now: datetime) -> Filters:
    """The filters in `params`; a field that cannot be used is named in `errors` and left out."""
    midnight = datetime.combine(now.astimezone(tz).date(), time(), tzinfo=tz)
    found = Filters(midnight, midnight + timedelta(days=1))
    for name, attr in (("from", "start"), ("to", "end")):
        value = params.get(name, "").strip()
        if value:
            try:
                setattr(found, attr, _local_time(value, tz))
            except ValueError:
                found.errors.append(f"entries.bad_{attr}")
    if found.end <= found.start:
        found.errors.append("entries.bad_window")
    for name in TEXT_FILTERS:
        value = params.get(name, "").strip()
        if value and (len(value) > MAX_TEXT or not value.isprintable()):
            found.errors.append(f"entries.bad_{name}")
        found.text[name] = value or None
    for name, allowed in (("decision", DECISIONS), ("reason", REASONS), ("cat", COLOURS)):
        value = params.get(name, "").strip()
        if value and value not in allowed:
            found.errors.append(f"entries.bad_{name}")
        elif value:
            setattr(found, name, value)
    after_ts, after_id = params.get("after_ts"), params.get("after_id")
    if after_ts and after_id:
        try:
            at = datetime.fromisoformat(after_ts)
            if at.tzinfo is None:
                raise ValueError(after_ts)
            found.after = (at, after_id[:64])
        except ValueError:
            found.errors.append("entries.bad_page")
    return found


def fetch(store: Store, filters: Filters, *, limit: int) -> list[Entry]:
    text = filters.text
    return store.entries_page(filters.start, filters.end, site=text.get("site"), kiosk=text.get("kiosk"),
                              decision=filters.decision, reason=filters.reason, cat=filters.cat,
                              pid=text.get("pid"), hh=text.get("hh"), after=filters.after, limit=limit)


def export_chunks(store: Store, filters: Filters) -> Iterator[list[Entry]]:
    """Every entry the filters match, newest first, a page at a time, read by key."""
    while True:
        page = fetch(store, filters, limit=EXPORT_PAGE)
        if page:
            yield page
        if len(page) < EXPORT_PAGE:
            return
        filters.after = (page[-1].ts, page[-1].id)


def entry_routes(web: OfficeWeb) -> list[Route]:
    """The page and its CSV export, for the office and admin roles."""
    tz = web.settings.tz

    async def page(request: Request, user: User) -> Response:
        filters = parse_filters(request.query_params, tz, web.now())
        context: dict[str, Any] = {"user": user, "filters": filters, "form": filters.query(local=tz),
                                   "decisions": DECISIONS, "reasons": REASONS, "colours": COLOURS,
                                   "rows": [], "next": None, "first": None, "csv_link": None,
                                   "xlsx_link": None,
                                   "offset": offset_label(tz, filters.start)}
        if filters.errors:
            return web.render(request, "entries.html", context, status_code=400)
        rows = await run_in_threadpool(fetch, web.store, filters, limit=PAGE + 1)
        base = filters.query(local=tz)
        if len(rows) > PAGE:
            last = rows[PAGE - 1]
            context["next"] = "/entries?" + urlencode({**base, "after_ts": format_ts(last.ts),
                                                       "after_id": last.id})
        if filters.after is not None:
            context["first"] = "/entries?" + urlencode(base)
        context.update(rows=rows[:PAGE], csv_link="/entries.csv?" + urlencode(base),
                       xlsx_link="/entries.xlsx?" + urlencode(base))
        return web.render(request, "entries.html", context)

    async def export(request: Request, user: User) -> Response:
        kind = request.path_params["kind"]
        if kind not in EXPORTS:
            return Response("not found", status_code=404, media_type="text/plain; charset=utf-8")
        filters = parse_filters(request.query_params, tz, web.now())
        filters.after = None
        if filters.errors:
            return Response("bad filters: " + ", ".join(filters.errors), status_code=400,
                            media_type="text/plain; charset=utf-8")
        await run_in_threadpool(web.store.audit, user.name, f"entries.export.{kind}", filters.audit(),
                                web.now())
        table = EntriesTable(tz, web.lang(request))
        pages = export_chunks(web.store, filters)
        name = f"entries-{filters.start.astimezone(tz):%Y%m%d-%H%M}.{kind}"
        disposition = {"content-disposition": f'attachment; filename="{name}"'}
        if kind == "xlsx":
            try:
                book = await run_in_threadpool(table.xlsx, filters.start, pages)
            except TooManyRows as exc:
                return Response(str(exc), status_code=413, media_type="text/plain; charset=utf-8")
            return StreamingResponse(iter(lambda: book.read(1 << 16), b""), media_type=XLSX_TYPE,
                                     headers=disposition, background=BackgroundTask(book.close))

        async def body() -> AsyncIterator[bytes]:
            yield table.csv_head(filters.start)
            while (page := await run_in_threadpool(next, pages, None)) is not None:
                yield table.csv_rows(page)

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=disposition)

    return [
        Route("/entries", web.require(OFFICE, page), name="entries"),
        Route("/entries.{kind:str}", web.require(OFFICE, export), name="entries_export"),
    ]
