"""The 追踪 Trace page: every entry of a household, pass, ID number or gate over a time window (local times,
the last 14 days by default), an entry's close contacts as a timeline, and the CSV export.

Office and admin only. Every query and export is audited with the signed-in user (`store.audit`) and
written to the trace log (`office.trace`, which logs before it reads). An ID number comes only in a POST
body: it is hashed with each site's key in memory (`id_number_refs`) and never stored, logged, put in a URL
or shown again; its results link their export by the keyed person refs instead.

`trace_routes(web)` gives the routes; app.py lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkpoint import idnumber
from checkpoint.configtypes import SecretError
from checkpoint.entry import Entry, format_ts
from office.store.base import Role, Store, User
from office.trace import TraceError, close_contacts, find_entry, id_number_refs, trace
from office.web.core import OfficeWeb
from office.web.exports import EntriesTable, offset_label

OFFICE: tuple[Role, ...] = ("office", "admin")
WINDOW = timedelta(days=14)
CONTACT_MINUTES = 15.0
BY = ("household", "pid", "kiosk")
MAX_TEXT = 64
MAX_REFS = 16


@dataclass
class Query:
    """A trace asked for; `errors` are translation keys, `problem` the trace module's own words."""

    start: datetime
    end: datetime
    by: str | None = None
    value: str = ""
    site: str | None = None
    refs: list[tuple[str, str]] = field(default_factory=list)  # (site, person ref), from an ID number
    entry: str | None = None
    minutes: float = CONTACT_MINUTES
    from_id_number: bool = False
    errors: list[str] = field(default_factory=list)

    def params(self, tz: ZoneInfo) -> dict[str, str]:
        """The query as URL parameters (never an ID number: refs stand for one)."""
        if self.entry is not None:
            return {"entry": self.entry, "minutes": f"{self.minutes:g}"}
        found = {"from": _form_time(self.start, tz), "to": _form_time(self.end, tz), "by": self.by or "",
                 "value": self.value, "site": self.site or ""}
        if self.by == "person":
            found["ref"] = ",".join(f"{site}:{ref}" for site, ref in self.refs)
        return {k: v for k, v in found.items() if v}

    def audit(self, found: int) -> str:
        by = "id_number" if self.from_id_number else self.by or "contacts"
        detail: dict[str, Any] = {"by": by, "found": found}
        if self.entry is not None:
            detail.update(entry=self.entry, minutes=self.minutes)
        else:
            detail.update({"from": format_ts(self.start), "to": format_ts(self.end)})
            if self.site:
                detail["site"] = self.site
            if self.by in BY:
                detail["value"] = self.value
            if self.refs:
                detail["sites"] = sorted({site for site, _ in self.refs})
        return json.dumps(detail, sort_keys=True, ensure_ascii=False)


def _form_time(value: datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def _text(value: object) -> str:
    return str(value or "").strip()


def parse_query(params: Mapping[str, Any], tz: ZoneInfo, now: datetime) -> Query:
    """The window, selector and value of a form or URL (not the ID number, which `post` reads itself)."""
    query = Query(now - WINDOW, now)
    for name, attr in (("from", "start"), ("to", "end")):
        value = _text(params.get(name))
        if value:
            try:
                parsed = datetime.fromisoformat(value)
                setattr(query, attr, parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed)
            except ValueError:
                query.errors.append(f"trace.bad_{attr}")
    if query.end <= query.start:
        query.errors.append("trace.bad_window")
    for name in ("value", "site", "entry"):
        value = _text(params.get(name))
        if len(value) > MAX_TEXT or not value.isprintable():
            query.errors.append(f"trace.bad_{name}")
            value = ""
        elif idnumber.looks_like_id_number(value):  # never shown again, not even in the form
            query.errors.append("trace.use_id_form")
            value = ""
        if name == "value":
            query.value = value
        elif name == "site":
            query.site = value or None
        elif value:
            query.entry = value
    by = _text(params.get("by"))
    if by in (*BY, "person"):
        query.by = by
    elif by:
        query.errors.append("trace.bad_by")
    if by == "person":
        for item in _text(params.get("ref")).split(",")[:MAX_REFS]:
            site, _, ref = item.partition(":")
            if site and ref:
                query.refs.append((site, ref))
    minutes = _text(params.get("minutes"))
    if minutes:
        try:
            query.minutes = float(minutes)
        except ValueError:
            query.errors.append("trace.bad_minutes")
    return query


def run_query(store: Store, query: Query, who: str, now: datetime) -> list[Entry]:
    """The entries of a household, pass, kiosk or person-ref query (each logged by `trace`)."""
    if query.by == "person":
        found: dict[str, Entry] = {}
        for site, ref in query.refs:
            for entry in trace(store, start=query.start, end=query.end, person_ref=ref, site=site, who=who,
                               now=now):
                found[entry.id] = entry
        return sorted(found.values(), key=lambda e: (e.ts, e.site, e.kiosk, e.seq))
    value = query.value
    return trace(store, start=query.start, end=query.end, site=query.site, who=who, now=now,
                 household=value if query.by == "household" else None,
                 pid=value if query.by == "pid" else None, kiosk=value if query.by == "kiosk" else None)


@dataclass(frozen=True)
class Moment:
    """One entry on a contacts timeline: how long before (-) or after (+) the index entry, in seconds."""

    entry: Entry
    delta_s: float
    index: bool

    @property
    def delta(self) -> str:
        sign = "−" if self.delta_s < 0 else "+"
        seconds = round(abs(self.delta_s))
        return f"{sign}{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{sign}{seconds} s"


def contacts(store: Store, query: Query, who: str, now: datetime) -> tuple[Entry, list[Moment]]:
    """The index entry and the timeline of it and its close contacts, by time."""
    assert query.entry is not None
    around = close_contacts(store, query.entry, minutes=query.minutes, who=who, now=now)
    index = find_entry(store, query.entry.strip().lower())
    moments = [Moment(e, (e.ts - index.ts).total_seconds(), False) for e in around]
    moments.append(Moment(index, 0.0, True))
    return index, sorted(moments, key=lambda m: (m.entry.ts, not m.index, m.entry.kiosk, m.entry.seq))


def trace_routes(web: OfficeWeb) -> list[Route]:
    """The trace page (GET; POST for an ID number) and its CSV export, for the office and admin roles."""
    tz = web.settings.tz

    def base(user: User, query: Query) -> dict[str, Any]:
        window = {"from": _form_time(query.start, tz), "to": _form_time(query.end, tz)}
        shown = {} if query.refs or query.entry is not None else query.params(tz)
        return {"user": user, "query": query, "form": {**window, **shown},
                "sites": sorted(web.settings.sites), "rows": None, "timeline": None, "index": None,
                "problem": None, "csv_link": None, "offset": offset_label(tz, query.end), "id_query": False}

    async def audit(user: User, action: str, detail: str) -> None:
        await run_in_threadpool(web.store.audit, user.name, action, detail, web.now())

    async def answer(request: Request, user: User, query: Query) -> Response:
        ctx = base(user, query)
        if query.errors:
            return web.render(request, "trace.html", ctx, status_code=400)
        try:
            if query.entry is not None:
                index, timeline = await run_in_threadpool(contacts, web.store, query, user.name, web.now())
                await audit(user, "trace.contacts", query.audit(len(timeline) - 1))
                ctx.update(index=index, timeline=timeline)
            elif query.by is not None:
                rows = await run_in_threadpool(run_query, web.store, query, user.name, web.now())
                await audit(user, "trace.query", query.audit(len(rows)))
                ctx["rows"] = rows
            else:
                return web.render(request, "trace.html", ctx)
        except TraceError as exc:
            ctx["problem"] = str(exc)
            return web.render(request, "trace.html", ctx, status_code=404 if "not found" in str(exc) else 400)
        ctx["csv_link"] = "/trace.csv?" + urlencode(query.params(tz))
        return web.render(request, "trace.html", ctx)

    async def page(request: Request, user: User) -> Response:
        return await answer(request, user, parse_query(request.query_params, tz, web.now()))

    async def by_id_number(request: Request, user: User) -> Response:
        form = await request.form()
        query = parse_query({k: form.get(k) for k in ("from", "to", "site")}, tz, web.now())
        query.by = "person"
        number = _text(form.get("id_number"))
        ctx = base(user, query)
        ctx["id_query"] = True
        if query.errors:
            return web.render(request, "trace.html", ctx, status_code=400)
        try:
            keys = {name: key for name, site in web.settings.sites.items() if (key := site.hmac_key())}
            refs = id_number_refs(number, keys, site=query.site)
        except (TraceError, SecretError) as exc:
            ctx["problem"] = str(exc)
            return web.render(request, "trace.html", ctx, status_code=400)
        query.refs, query.site, query.from_id_number = sorted(refs.items()), None, True
        rows = await run_in_threadpool(run_query, web.store, query, user.name, web.now())
        await audit(user, "trace.query", query.audit(len(rows)))
        ctx.update(rows=rows, csv_link="/trace.csv?" + urlencode(query.params(tz)))
        return web.render(request, "trace.html", ctx)

    async def export(request: Request, user: User) -> Response:
        query = parse_query(request.query_params, tz, web.now())
        if query.errors or (query.entry is None and query.by is None):
            return Response("bad query: " + ", ".join(query.errors or ["trace.no_query"]), status_code=400,
                            media_type="text/plain; charset=utf-8")
        try:
            if query.entry is not None:
                _, timeline = await run_in_threadpool(contacts, web.store, query, user.name, web.now())
                rows = [m.entry for m in timeline]
            else:
                rows = await run_in_threadpool(run_query, web.store, query, user.name, web.now())
        except TraceError as exc:
            return Response(str(exc), status_code=400, media_type="text/plain; charset=utf-8")
        await audit(user, "trace.export", query.audit(len(rows)))
        table = EntriesTable(tz, web.lang(request))
        at = rows[0].ts if rows else query.end
        name = f"trace-{web.now().astimezone(tz):%Y%m%d-%H%M}.csv"
        return Response(table.csv_head(at) + table.csv_rows(rows), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    return [
        Route("/trace", web.require(OFFICE, page), name="trace"),
        Route("/trace", web.require(OFFICE, by_id_number), methods=["POST"], name="trace_id_number"),
        Route("/trace.csv", web.require(OFFICE, export), name="trace_export"),
    ]
