"""What every page of the office web app shares: the settings, the store, the templates and the guard.

`OfficeWeb` is handed to each page module's `xxx_routes(web)`; office/web/app.py adds the sign-in routes
and builds the app. Every route but sign-in, the language switch, `/healthz` and the static files goes
through `OfficeWeb.require`: without a signed-in user a page redirects to /signin and an API answers 401; a
role that may not see it gets 403; a POST without this session's CSRF token (form field `csrf` or header
X-CSRF-Token) gets 403.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from office.config import SiteSection
from office.mqtt import BrokerLink
from office.store.base import Role, Store, User
from office.web.i18n import DEFAULT_LANG, LANGS, Lang, translate
from office.web.security import CSRF_FIELD, CSRF_HEADER, SignInLimiter, csrf_ok, csrf_token, session_hash

HERE = Path(__file__).resolve().parent
EVERYONE: tuple[Role, ...] = ("guard", "office", "admin")
OFFICE: tuple[Role, ...] = ("office", "admin")
ADMIN: tuple[Role, ...] = ("admin",)

Endpoint = Callable[[Request, User], Awaitable[Response]]


@dataclass(frozen=True)
class WebSettings:
    """What the app takes from the config's [web] and [report] sections."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    silent_after_s: int = 120
    session_hours: int = 12
    tls: bool = False
    sites: Mapping[str, SiteSection] = field(default_factory=dict)  # names, signing keys ([sites.X])
    broker: BrokerLink | None = None  # where remote opens and revocation lists go; None: nowhere


@dataclass(frozen=True)
class KioskRow:
    """A kiosk as the overview shows it."""

    site: str
    kiosk: str
    state: str  # "online" | "offline" | "silent" (online, but no heartbeat within silent_after_s)
    silent: bool
    since: datetime
    last_seen: datetime
    backlog: int | None
    camera: str | None  # "ok" | "fault" | "absent" | "unknown", None before the first full status
    thermometer: str | None
    version: str


def password_stamp(user: User) -> str:
    """Changes whenever the password does: a session made before the change no longer matches."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


class OfficeWeb:
    """What the pages share: the store, the settings, the clock, the templates and the guard."""

    def __init__(self, store: Store, settings: WebSettings, limiter: SignInLimiter,
                 now: Callable[[], datetime]) -> None:
        self.store, self.settings, self.limiter, self.now = store, settings, limiter, now
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        env.filters["local"] = self._local
        self.templates = Jinja2Templates(env=env)

    # -- the guard -------------------------------------------------------------------------------------

    def signed_in(self, request: Request) -> User | None:
        """The session's user, if the session is still open in the store (not signed out, not expired),
        and the user still enabled with the same password."""
        name, session_id = request.session.get("user"), request.session.get("sid")
        if not isinstance(name, str) or not isinstance(session_id, str):
            return None
        user = None
        if self.store.web_session_user(session_hash(session_id), now=self.now()) == name:
            user = self.store.user(name)
        if user is None or user.disabled or request.session.get("stamp") != password_stamp(user):
            request.session.pop("user", None)
            return None
        return user

    def require(self, roles: Collection[Role], endpoint: Endpoint, *, api: bool = False
                ) -> Callable[[Request], Awaitable[Response]]:
        """`endpoint` for a signed-in user with one of `roles`, and a POST only with the CSRF token."""
        async def guarded(request: Request) -> Response:
            user = await run_in_threadpool(self.signed_in, request)
            if user is None:
                if api:
                    return JSONResponse({"error": "sign in first"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
            if user.role not in roles:
                if api:
                    return JSONResponse({"error": f"not for the role {user.role}"}, status_code=403)
                return self.render(request, "forbidden.html", {"user": user}, status_code=403)
            if request.method == "POST" and not await self.csrf_checked(request):
                if api:
                    return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
                return self.render(request, "forbidden.html", {"user": user, "csrf_failed": True},
                                   status_code=403)
            return await endpoint(request, user)
        return guarded

    @staticmethod
    async def csrf_checked(request: Request) -> bool:
        sent: object = request.headers.get(CSRF_HEADER)
        if sent is None:
            sent = (await request.form()).get(CSRF_FIELD)
        return csrf_ok(request.session, sent)

    # -- rendering -------------------------------------------------------------------------------------

    def _local(self, value: datetime | None) -> str:
        return "" if value is None else value.astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def lang(request: Request) -> Lang:
        chosen = request.session.get("lang")
        return next((lang for lang in LANGS if lang == chosen), DEFAULT_LANG)

    def render(self, request: Request, template: str, context: dict[str, Any], *,
               status_code: int = 200) -> Response:
        lang = self.lang(request)

        def t(key: str, **values: object) -> str:
            return translate(lang, key, **values)

        base = {"t": t, "lang": lang, "other_lang": LANGS[1 - LANGS.index(lang)], "user": None,
                "csrf": csrf_token(request.session), "path": request.url.path}
        return self.templates.TemplateResponse(request, template, {**base, **context},
                                               status_code=status_code)

    async def audit(self, who: str, action: str, detail: str) -> None:
        await run_in_threadpool(self.store.audit, who, action, detail, self.now())

    def kiosk_rows(self) -> list[KioskRow]:
        now = self.now()
        rows = []
        for k in self.store.kiosk_states():
            silent = (now - k.last_seen).total_seconds() > self.settings.silent_after_s
            state = "silent" if silent and k.state == "online" else k.state
            rows.append(KioskRow(k.site, k.kiosk, state, silent, k.since, k.last_seen, k.backlog, k.camera,
                                 k.thermometer, k.version or "-"))
        return rows
