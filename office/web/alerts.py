"""The 告警 Alerts page: stored alerts (fever, forgery, fault) and offline kiosks, open ones first, with
acknowledge and resolve, and `/alerts/events`, a server-sent event stream of new alerts for the open page.

`alert_routes(web)` gives the routes; app.py lists them. The stream polls the store every `POLL_S` and
ends after `STREAM_S` (the browser's EventSource reconnects and resumes from Last-Event-ID), when the
client goes away, or when the server cancels it at shutdown. The streams of one process share one read
of the kiosks' states per poll (`SharedRead`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from office.store.base import AlertHandling, AlertView, Role, User
from office.store.schema import to_text_time
from office.web.core import OfficeWeb
from office.web.i18n import translate
from office.web.security import csrf_token

EVERYONE: tuple[Role, ...] = ("guard", "office", "admin")
OFFICE: tuple[Role, ...] = ("office", "admin")
POLL_S = 0.5
STREAM_S = 300.0
PAGE_ALERTS = 200
MAX_NOTE = 500


T = TypeVar("T")


class SharedRead(Generic[T]):
    """`read()` made at most once per `max_age_s` for every caller, so that many open event streams cost
    one read of the store per poll. Called in worker threads: the others wait for the one reading."""

    def __init__(self, read: Callable[[], T], max_age_s: float) -> None:
        self._read, self.max_age_s = read, max_age_s
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._held: tuple[T] | None = None

    def get(self) -> T:
        with self._lock:
            if self._held is None or time.monotonic() - self._read_at >= self.max_age_s:
                self._held = (self._read(),)
                self._read_at = time.monotonic()
            return self._held[0]


@dataclass(frozen=True)
class AlertCard:
    """One alert as the page shows it: `key` is what acknowledge and resolve name it by."""

    key: str
    kind: str  # "fever" | "forgery" | "fault" | "offline"
    site: str
    kiosk: str
    at: datetime
    detail: str
    entry_id: str | None
    body_c: float | None
    colour: str | None
    hh: str | None
    person: str | None
    handling: AlertHandling | None
    reasons: tuple[str, ...] = ()  # the entry's reason codes (e.g. health_code_not_holder for a forgery)

    @property
    def open(self) -> bool:
        return self.handling is None or self.handling.resolved_by is None


def card_of(view: AlertView) -> AlertCard:
    alert, entry = view.stored.alert, view.entry
    temperature = entry.temperature if entry else None
    pass_ = entry.pass_ if entry else None
    person = entry.person if entry else None
    return AlertCard(view.key, alert.kind, view.stored.site, view.stored.kiosk, alert.ts,
                     alert.detail, alert.entry_id, temperature.body_c if temperature else None,
                     pass_.cat if pass_ else None, pass_.hh if pass_ else None,
                     person.masked if person else None, view.handling,
                     tuple(str(reason) for reason in entry.reasons) if entry else ())


def offline_key(site: str, kiosk: str, since: datetime) -> str:
    return f"offline:{site}/{kiosk}:{to_text_time(since)}"


def offline_cards(web: OfficeWeb) -> list[AlertCard]:
    """A card for each kiosk offline or silent now, keyed by when it went."""
    offline = [row for row in web.kiosk_rows() if row.state in ("offline", "silent")]
    keys = [offline_key(row.site, row.kiosk, row.since) for row in offline]
    handled = web.store.alert_handling(keys)
    return [AlertCard(key, "offline", row.site, row.kiosk, row.since, row.state, None, None, None, None,
                      None, handled.get(key)) for key, row in zip(keys, offline, strict=True)]


def cards(web: OfficeWeb) -> tuple[list[AlertCard], int]:
    """Every card, open ones first and newest first within each, and the newest stored alert's number."""
    views = web.store.recent_alerts(limit=PAGE_ALERTS)
    found = [card_of(view) for view in views] + offline_cards(web)
    found.sort(key=lambda card: (not card.open, -card.at.timestamp()))
    return found, max((view.n for view in views), default=0)


def _form_text(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def alert_routes(web: OfficeWeb) -> list[Route]:
    """The page, its two actions and its event stream, each behind `web.require`."""

    def context(request: Request, user: User) -> dict[str, Any]:
        lang = web.lang(request)

        def t(key: str, **values: object) -> str:
            return translate(lang, key, **values)

        return {"t": t, "user": user, "csrf": csrf_token(request.session)}

    async def page(request: Request, user: User) -> Response:
        found, last = await run_in_threadpool(cards, web)
        return web.render(request, "alerts.html", {"user": user, "cards": found, "last": last})

    async def acknowledge(request: Request, user: User) -> Response:
        form = await request.form()
        key, note = _form_text(form.get("alert"), 200), _form_text(form.get("note"), MAX_NOTE)
        if key:
            await run_in_threadpool(lambda: web.store.acknowledge_alert(key, by=user.name, at=web.now(),
                                                                        note=note))
        return RedirectResponse("/alerts", status_code=303)

    async def resolve(request: Request, user: User) -> Response:
        form = await request.form()
        key, note = _form_text(form.get("alert"), 200), _form_text(form.get("note"), MAX_NOTE)
        if key and note:
            await run_in_threadpool(lambda: web.store.resolve_alert(key, by=user.name, at=web.now(),
                                                                    note=note))
        return RedirectResponse("/alerts", status_code=303)

    offline_now = SharedRead(lambda: offline_cards(web), POLL_S * 0.8)

    async def events(request: Request, user: User) -> Response:
        resume = request.headers.get("last-event-id") or request.query_params.get("after", "")
        if resume.isdigit():
            after = int(resume)
        else:
            newest = await run_in_threadpool(lambda: web.store.recent_alerts(limit=1))
            after = newest[0].n if newest else 0
        card_template = web.templates.get_template("alert_card.html")
        words = context(request, user)

        def event(card: AlertCard, n: int | None = None) -> str:
            html = card_template.render({**words, "c": card})
            data = "".join(f"data: {line}\n" for line in html.splitlines())
            return ("" if n is None else f"id: {n}\n") + f"event: alert\n{data}\n"

        async def stream(after: int) -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            offline: set[str] = set()  # sent this stream; the page ignores a card it already shows
            deadline = time.monotonic() + STREAM_S
            while time.monotonic() < deadline and not await request.is_disconnected():
                for view in await run_in_threadpool(web.store.alerts_after, after, limit=50):
                    after = view.n
                    yield event(card_of(view), view.n)
                now_offline = {card.key: card for card in await run_in_threadpool(offline_now.get)}
                for key in now_offline.keys() - offline:
                    yield event(now_offline[key])
                for key in offline - now_offline.keys():
                    yield f"event: back\ndata: {key}\n\n"
                offline = set(now_offline)
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(after), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return [
        Route("/alerts", web.require(EVERYONE, page), name="alerts"),
        Route("/alerts/ack", web.require(EVERYONE, acknowledge), methods=["POST"], name="alerts_ack"),
        Route("/alerts/resolve", web.require(OFFICE, resolve), methods=["POST"], name="alerts_resolve"),
        Route("/alerts/events", web.require(EVERYONE, events), name="alerts_events"),
    ]
