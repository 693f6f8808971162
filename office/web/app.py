"""The office web app: `create_app(store, session_key)` gives the Starlette application.

Every route but sign-in, the language switch and the static files goes through `OfficeWeb.require`:
without a signed-in user a page redirects to /signin and an API answers 401; a role that may not see it
gets 403; a POST without this session's CSRF token (form field `csrf` or header X-CSRF-Token) gets 403.
The session is Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure over TLS). It holds the user's
name, a stamp of their password hash and a secret session id whose hash the store keeps until sign-out or
`session_hours`. Both are checked on every request, so signing out, a disabled user or a changed password
ends that session at once, in every web process on the store, and a copied cookie dies with it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkpoint.entry import utc_now
from office.config import SiteSection
from office.mqtt import BrokerLink
from office.store.base import Role, Store, User
from office.web.alerts import alert_routes
from office.web.entries import entry_routes
from office.web.health import Metrics, RequestCounting, health_routes
from office.web.i18n import DEFAULT_LANG, LANGS, Lang, translate
from office.web.overview import overview_routes
from office.web.passes import pass_routes
from office.web.passwords import verify_password
from office.web.remote_open import remote_open_routes
from office.web.reports import report_routes
from office.web.security import CSRF_FIELD, CSRF_HEADER, SignInLimiter, csrf_ok, csrf_token, session_hash
from office.web.trace import trace_routes

HERE = Path(__file__).resolve().parent
EVERYONE: tuple[Role, ...] = ("guard", "office", "admin")
OFFICE: tuple[Role, ...] = ("office", "admin")
ADMIN: tuple[Role, ...] = ("admin",)
SESSION_COOKIE = "office_session"
HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}

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


class SecurityHeaders:
    """Adds HEADERS to every response: the app loads nothing from elsewhere and is never framed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.encode(), v.encode()) for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def password_stamp(user: User) -> str:
    """Changes whenever the password does: a session made before the change no longer matches."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def local_path(target: str | None, default: str = "/overview") -> str:
    """`target` if it is a path on this site (never another host), else `default`."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def client_address(request: Request) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For only behind a trusted proxy)."""
    return request.client.host if request.client else "unknown"


class OfficeWeb:
    """The routes and what they share: the store, the sign-in limiter and the templates."""

    def __init__(self, store: Store, settings: WebSettings, limiter: SignInLimiter,
                 now: Callable[[], datetime]) -> None:
        self.store, self.settings, self.limiter, self.now = store, settings, limiter, now
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        env.filters["local"] = self._local
        self.templates = Jinja2Templates(env=env)

    def routes(self) -> list[BaseRoute]:
        """Every route: each page and API behind `require`, but for sign-in, the language and assets."""
        return [
            Route("/", self.require(EVERYONE, self.home), name="home"),
            Route("/signin", self.signin_form, methods=["GET"], name="signin"),
            Route("/signin", self.signin, methods=["POST"]),
            Route("/signout", self.require(EVERYONE, self.signout), methods=["POST"], name="signout"),
            Route("/lang/{lang}", self.set_lang, name="lang"),
            Route("/admin", self.require(ADMIN, self.admin), name="admin"),
            Route("/api/kiosks", self.require(EVERYONE, self.api_kiosks, api=True), name="api_kiosks"),
            Route("/api/audit", self.require(ADMIN, self.api_audit, api=True), name="api_audit"),
            *alert_routes(self),
            *entry_routes(self),
            *overview_routes(self),
            *pass_routes(self),
            *report_routes(self),
            *trace_routes(self),
            *remote_open_routes(self),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

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

    # -- sign-in and out -------------------------------------------------------------------------------

    async def signin_form(self, request: Request) -> Response:
        return self.render(request, "signin.html", {"next": local_path(request.query_params.get("next")),
                                                    "error": None, "name": ""})

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        name = str(form.get("username", "")).strip()[:64]
        target = local_path(str(form.get("next", "")))
        context: dict[str, Any] = {"next": target, "name": name}
        if not csrf_ok(request.session, form.get(CSRF_FIELD)):
            return self.render(request, "signin.html", {**context, "error": ("signin.expired", {})},
                               status_code=403)
        address = client_address(request)
        keys = [f"address:{address}", f"user:{name.casefold()}"]
        wait = await run_in_threadpool(self.limiter.retry_after, keys)
        if wait > 0:
            await self._audit(name or "-", "signin.refused", f"from {address}: too many failures")
            minutes = max(1, math.ceil(wait / 60))
            response = self.render(request, "signin.html", {**context, "error": ("signin.limited",
                                                                                 {"minutes": minutes})},
                                   status_code=429)
            response.headers["retry-after"] = str(math.ceil(wait))
            return response
        user = await run_in_threadpool(self.store.user, name) if name else None
        usable = user is not None and not user.disabled
        ok = await run_in_threadpool(verify_password, user.password_hash if user and usable else None,
                                     str(form.get("password", "")))
        if not ok or user is None:
            await run_in_threadpool(self.limiter.failed, keys)
            why = "no such user" if user is None else "disabled" if user.disabled else "wrong password"
            await self._audit(name or "-", "signin.failed", f"from {address}: {why}")
            return self.render(request, "signin.html", {**context, "error": ("signin.wrong", {})},
                               status_code=401)
        await run_in_threadpool(self.limiter.succeeded, keys)
        session_id = secrets.token_urlsafe(32)
        now = self.now()
        await run_in_threadpool(lambda: self.store.open_web_session(
            session_hash(session_id), user.name, at=now,
            expires=now + timedelta(hours=self.settings.session_hours)))
        lang = request.session.get("lang")
        request.session.clear()  # a new session (and CSRF token) for the signed-in user
        request.session.update({"user": user.name, "stamp": password_stamp(user), "sid": session_id})
        if lang in LANGS:
            request.session["lang"] = lang
        await self._audit(user.name, "signin", f"from {address}")
        return RedirectResponse(target, status_code=303)

    async def signout(self, request: Request, user: User) -> Response:
        session_id = request.session.get("sid")
        if isinstance(session_id, str):  # a copy of the cookie signs nobody in after this
            ended = session_hash(session_id)
            await run_in_threadpool(lambda: self.store.close_web_sessions(session_hash=ended))
        lang = request.session.get("lang")
        request.session.clear()
        if lang in LANGS:
            request.session["lang"] = lang
        await self._audit(user.name, "signout", f"from {client_address(request)}")
        return RedirectResponse("/signin", status_code=303)

    async def _audit(self, who: str, action: str, detail: str) -> None:
        await run_in_threadpool(self.store.audit, who, action, detail, self.now())

    async def set_lang(self, request: Request) -> Response:
        """Switch the language and go back to `next`, a path. The query of the page the switch was on comes
        from the Referer (same site and path only), so a page never writes its query into its own links."""
        lang = request.path_params["lang"]
        if lang in LANGS:
            request.session["lang"] = lang
        target = local_path(request.query_params.get("next"))
        came_from = urlsplit(request.headers.get("referer", ""))
        if (came_from.netloc == request.url.netloc and came_from.path == target and came_from.query
                and "?" not in target):
            target = f"{target}?{came_from.query}"
        return RedirectResponse(target, status_code=303)

    # -- pages and APIs --------------------------------------------------------------------------------

    async def home(self, request: Request, user: User) -> Response:
        return RedirectResponse("/overview", status_code=303)

    def kiosk_rows(self) -> list[KioskRow]:
        now = self.now()
        rows = []
        for k in self.store.kiosk_states():
            silent = (now - k.last_seen).total_seconds() > self.settings.silent_after_s
            state = "silent" if silent and k.state == "online" else k.state
            rows.append(KioskRow(k.site, k.kiosk, state, silent, k.since, k.last_seen, k.backlog, k.camera,
                                 k.thermometer, k.version or "-"))
        return rows

    async def admin(self, request: Request, user: User) -> Response:
        users = await run_in_threadpool(self.store.users)
        log = await run_in_threadpool(lambda: self.store.audit_log(limit=200))
        return self.render(request, "admin.html", {"user": user, "users": users, "log": log})

    async def api_kiosks(self, request: Request, user: User) -> Response:
        rows = await run_in_threadpool(self.kiosk_rows)
        return JSONResponse([{"site": r.site, "kiosk": r.kiosk, "state": r.state, "silent": r.silent,
                              "last_seen": r.last_seen.isoformat(), "backlog": r.backlog} for r in rows])

    async def api_audit(self, request: Request, user: User) -> Response:
        log = await run_in_threadpool(lambda: self.store.audit_log(limit=200))
        return JSONResponse([{"at": a.at.isoformat(), "who": a.who, "action": a.action, "detail": a.detail}
                             for a in log])


def create_app(store: Store, session_key: bytes, settings: WebSettings | None = None, *,
               limiter: SignInLimiter | None = None, now: Callable[[], datetime] = utc_now) -> Starlette:
    """The app over `store`; `session_key` signs the session cookies (32 random bytes or more)."""
    if len(session_key) < 32:
        raise ValueError("the session key needs at least 32 bytes")
    settings = settings or WebSettings()
    web = OfficeWeb(store, settings, limiter or SignInLimiter(store, now=now), now)
    metrics = Metrics(web)
    middleware = [
        Middleware(RequestCounting, metrics=metrics),
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=session_key.hex(), session_cookie=SESSION_COOKIE,
                   max_age=settings.session_hours * 3600, same_site="lax", https_only=settings.tls),
    ]
    app = Starlette(routes=[*health_routes(web, metrics), *web.routes()], middleware=middleware)
    app.state.web = web
    return app
