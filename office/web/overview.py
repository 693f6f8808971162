"""The 总览 Overview: every kiosk (state, last heartbeat, backlog, device faults, seq gaps and conflicts),
today's counts per gate and the open alerts, pushed live.

The page holds one fragment (overview_live.html) that `/overview/events` re-renders about every `POLL_S`
and sends as an `overview` server-sent event only when it changed; htmx's SSE extension swaps it in. A
kiosk that falls silent turns grey with no message from it, because each render compares the clock with
its last heartbeat. A stream ends after `STREAM_S` (the browser reconnects), when the client goes away, or
at server shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from office.store.base import Gap, KioskCounts, Role, Store, User
from office.web.alerts import AlertCard, KioskLike, cards
from office.web.i18n import Lang, translate

EVERYONE: tuple[Role, ...] = ("guard", "office", "admin")
POLL_S = 1.0
STREAM_S = 300.0
NEWEST_ALERTS = 5
FAULTY = ("fault", "absent", "unknown")


class Settings(Protocol):
    @property
    def tz(self) -> ZoneInfo: ...

    @property
    def silent_after_s(self) -> int: ...


class KioskRowLike(KioskLike, Protocol):
    @property
    def silent(self) -> bool: ...
    @property
    def last_seen(self) -> datetime: ...
    @property
    def backlog(self) -> int | None: ...
    @property
    def camera(self) -> str | None: ...
    @property
    def thermometer(self) -> str | None: ...
    @property
    def version(self) -> str: ...


class OfficeWeb(Protocol):
    """What the routes use of office.web.app's `OfficeWeb` (which imports this module)."""

    store: Store
    now: Callable[[], datetime]
    templates: Jinja2Templates

    @property
    def settings(self) -> Settings: ...

    def kiosk_rows(self) -> Sequence[KioskRowLike]: ...

    def lang(self, request: Request) -> Lang: ...

    def render(self, request: Request, template: str, context: dict[str, Any], *,
               status_code: int = 200) -> Response: ...

    def require(self, roles: Collection[Role], endpoint: Callable[[Request, User], Awaitable[Response]], *,
                api: bool = False) -> Callable[[Request], Awaitable[Response]]: ...


@dataclass(frozen=True)
class KioskLine:
    """A kiosk as the overview shows it: its row, its faulty devices, its seq gaps and conflicts."""

    row: KioskRowLike
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


def device_faults(row: KioskRowLike) -> tuple[tuple[str, str], ...]:
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
    found_cards, _ = cards(web)
    open_cards = [card for card in found_cards if card.open]
    total = KioskCounts("", "", *(sum(getattr(c, name) for c in counts)
                                  for name in ("entries", "allows", "denies", "attentions", "fevers")))
    return Overview(lines, counts, total, open_cards[:NEWEST_ALERTS], len(open_cards),
                    now.date().isoformat(), web.settings.silent_after_s)


def overview_routes(web: OfficeWeb) -> list[Route]:
    """The page and its event stream, for every role."""

    async def page(request: Request, user: User) -> Response:
        data = await run_in_threadpool(overview_of, web)
        return web.render(request, "overview.html", {"user": user, "o": data})

    async def events(request: Request, user: User) -> Response:
        fragment = web.templates.get_template("overview_live.html")
        lang = web.lang(request)

        def t(key: str, **values: object) -> str:
            return translate(lang, key, **values)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            sent = ""
            deadline = time.monotonic() + STREAM_S
            while time.monotonic() < deadline and not await request.is_disconnected():
                data = await run_in_threadpool(overview_of, web)
                html = fragment.render({"t": t, "user": user, "o": data})
                if html != sent:
                    sent = html
                    data_lines = "".join(f"data: {line}\n" for line in html.splitlines())
                    yield f"event: overview\n{data_lines}\n"
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return [
        Route("/overview", web.require(EVERYONE, page), name="overview"),
        Route("/overview/events", web.require(EVERYONE, events), name="overview_events"),
    ]
