"""The 总览 Overview: every kiosk (state, last heartbeat, backlog, device faults, seq gaps and conflicts),
today's counts per gate and the open alerts, pushed live.

The page has three live sections that htmx's SSE extension swaps when `/overview/events` sends the event
of its name: `today`, `alerts` and `kiosks`. A table is sent whole only when its rows are not those sent;
otherwise only its rows that changed are, each its own event (`kiosk:<site>/<kiosk>`, and `gate:…` with
`totals` for today's counts), so that a heartbeat or an entry sends one row, not 200. The stream re-reads
about every `POLL_S`. A kiosk that falls silent turns grey with no message from it, because each read
compares the clock with its last heartbeat. A stream ends after `STREAM_S` (the browser reconnects), when
the client goes away, or at server shutdown. All the streams of one process share one read of the store
per poll and one render of each part per language (`SharedOverview`), so that many open monitors do not
multiply the work.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from office.store.base import Gap, KioskCounts, Role, User
from office.web.alerts import AlertCard, SharedRead, card_of, offline_cards
from office.web.core import KioskRow, OfficeWeb
from office.web.i18n import Lang, translate

EVERYONE: tuple[Role, ...] = ("guard", "office", "admin")
POLL_S = 1.0
STREAM_S = 300.0
NEWEST_ALERTS = 5
FAULTY = ("fault", "absent", "unknown")


@dataclass(frozen=True)
class KioskLine:
    """A kiosk as the overview shows it: its row, its faulty devices, its seq gaps and conflicts."""

    row: KioskRow
    faults: tuple[tuple[str, str], ...]  # (device, state) of each device not "ok"
    gaps: tuple[Gap, ...]
    missing: int
    conflicts: int


@dataclass
class Overview:
    """Everything on the page at one moment."""

    kiosks: list[KioskLine]
    counts: list[KioskCounts]
    total: KioskCounts
    open_alerts: list[AlertCard]
    open_count: int
    day: str
    silent_after_s: int


def device_faults(row: KioskRow) -> tuple[tuple[str, str], ...]:
    devices = (("camera", row.camera), ("thermometer", row.thermometer))
    return tuple((device, state) for device, state in devices if state in FAULTY)


def overview_of(web: OfficeWeb) -> Overview:
    """Read the store once for the page (blocking: call it in a thread)."""
    tz = web.settings.tz
    now = web.now().astimezone(tz)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = web.store.counts_by_kiosk(midnight, midnight + timedelta(days=1))
    gaps: dict[tuple[str, str], list[Gap]] = defaultdict(list)
    for gap in web.store.gaps():
        gaps[(gap.site, gap.kiosk)].append(gap)
    conflicts: dict[tuple[str, str], int] = defaultdict(int)
    for conflict in web.store.seq_conflicts():
        conflicts[(conflict.site, conflict.kiosk)] += 1
    lines = []
    for row in web.kiosk_rows():
        key = (row.site, row.kiosk)
        found = tuple(gaps.get(key, ()))
        lines.append(KioskLine(row, device_faults(row), found, sum(g.last - g.first + 1 for g in found),
                               conflicts.get(key, 0)))
    stored, stored_open = web.store.open_alerts(limit=NEWEST_ALERTS)
    offline = [card for card in offline_cards(web) if card.open]
    open_cards = sorted([card_of(view) for view in stored] + offline, key=lambda card: card.at, reverse=True)
    total = KioskCounts("", "", *(sum(getattr(c, name) for c in counts)
                                  for name in ("entries", "allows", "denies", "attentions", "fevers")))
    return Overview(lines, counts, total, open_cards[:NEWEST_ALERTS], stored_open + len(offline),
                    now.date().isoformat(), web.settings.silent_after_s)


class Parts:
    """The live parts of the page in one language from one read, each rendered when first asked for.

    The two tables' rows are parts of their own: `rows["kiosks"]` ("kiosk:<site>/<kiosk>") and
    `rows["today"]` ("gate:<site>/<kiosk>", today's counts; "totals" is the part above them)."""

    def __init__(self, templates: Jinja2Templates, data: Overview, lang: Lang,
                 previous: Parts | None = None) -> None:
        self.data, self._templates = data, templates
        self._previous = previous  # the last read's: a row with the same data keeps its html
        if previous is not None:
            previous._previous = None
        self._rows: dict[str, tuple[str, dict[str, Any]]] = {}
        for line in data.kiosks:
            row = line.row
            self._rows[f"kiosk:{row.site}/{row.kiosk}"] = ("overview_kiosk_row.html", {"line": line})
        for counts in data.counts:
            self._rows[f"gate:{counts.site}/{counts.kiosk}"] = ("overview_gate_row.html", {"c": counts})
        self.rows = {"kiosks": [name for name in self._rows if name.startswith("kiosk:")],
                     "today": [name for name in self._rows if name.startswith("gate:")]}
        self._lock = threading.Lock()
        self._html: dict[str, str] = {}

        def t(key: str, **values: object) -> str:
            return translate(lang, key, **values)

        self._t = t

    def html(self, name: str) -> str:
        """The part `name`: "today", "totals", "alerts", "kiosks", or a row's."""
        with self._lock:
            if name not in self._html:
                template, context = self._rows.get(name) or (f"overview_{name}.html", {"o": self.data})
                self._html[name] = self._unchanged_row(name) or self._templates.get_template(
                    template).render({"t": self._t, **context})
            return self._html[name]

    def _unchanged_row(self, name: str) -> str | None:
        previous = self._previous
        if previous is None or name not in self._rows or previous._rows.get(name) != self._rows[name]:
            return None
        return previous._html.get(name)


class SharedOverview:
    """The overview read at most once per `max_age_s` for every stream (`SharedRead`), and its parts
    rendered once per language. Called in worker threads."""

    def __init__(self, web: OfficeWeb, max_age_s: float) -> None:
        self._read = SharedRead(lambda: overview_of(web), max_age_s)
        self._templates = web.templates
        self._lock = threading.Lock()
        self._parts_of: Overview | None = None
        self._parts: dict[Lang, Parts] = {}
        self._previous: dict[Lang, Parts] = {}

    def parts(self, lang: Lang) -> Parts:
        """The live parts in `lang`, as of at most `max_age_s` ago."""
        data = self._read.get()
        with self._lock:
            if data is not self._parts_of:
                self._parts_of, self._previous, self._parts = data, self._parts, {}
            if lang not in self._parts:
                self._parts[lang] = Parts(self._templates, data, lang, self._previous.get(lang))
            return self._parts[lang]


@dataclass
class Sent:
    """What one stream has sent: the html of each part, and the rows of each table as last sent whole."""

    parts: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[str]] = field(default_factory=dict)


def sse(name: str, html: str) -> str:
    """A server-sent event; the lines' indentation is dropped (no part has preformatted text)."""
    data = "".join(f"data: {line.strip()}\n" for line in html.splitlines() if line.strip())
    return f"event: {name}\n{data}\n"


def changes(parts: Parts, sent: Sent) -> list[str]:
    """The events that bring a page showing `sent` up to `parts` (and `sent` updated to match): a table
    whole when its rows are not those sent, else only the rows (and the totals) that changed."""
    events = []

    def send_if_changed(name: str) -> None:
        html = parts.html(name)
        if sent.parts.get(name) != html:
            sent.parts[name] = html
            events.append(sse(name, html))

    for table, inside in (("today", ["totals"]), ("alerts", []), ("kiosks", [])):
        rows = parts.rows.get(table)
        if rows is None:
            send_if_changed(table)
        elif sent.rows.get(table) != rows:
            events.append(sse(table, parts.html(table)))
            sent.rows[table] = rows
            sent.parts.update((name, parts.html(name)) for name in [*inside, *rows])
        else:
            for name in [*inside, *rows]:
                send_if_changed(name)
    return events


def overview_routes(web: OfficeWeb) -> list[Route]:
    """The page and its event stream, for every role."""

    async def page(request: Request, user: User) -> Response:
        data = await run_in_threadpool(overview_of, web)
        return web.render(request, "overview.html", {"user": user, "o": data})

    shared = SharedOverview(web, POLL_S * 0.8)

    async def events(request: Request, user: User) -> Response:
        lang = web.lang(request)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            sent = Sent()
            deadline = time.monotonic() + STREAM_S
            while time.monotonic() < deadline and not await request.is_disconnected():
                parts = await run_in_threadpool(shared.parts, lang)
                for event in await run_in_threadpool(changes, parts, sent):
                    yield event
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return [
        Route("/overview", web.require(EVERYONE, page), name="overview"),
        Route("/overview/events", web.require(EVERYONE, events), name="overview_events"),
    ]
