"""The office web app: `create_app(store, session_key)` gives the Starlette application.

Each page module gives its routes from `office.web.core.OfficeWeb`, which guards them; this module adds
sign-in and out, the language switch, the users and audit page, and the security headers.

The session is Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure over TLS). It holds the user's
name, a stamp of their password hash and a secret session id whose hash the store keeps until sign-out or
`session_hours`. Both are checked on every request, so signing out, a disabled user or a changed password
ends that session at once, in every web process on the store, and a copied cookie dies with it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkpoint.entry import utc_now
from office.store.base import Store, User
from office.web.alerts import alert_routes
from office.web.core import ADMIN, EVERYONE, HERE, OfficeWeb, WebSettings, password_stamp
from office.web.entries import entry_routes
from office.web.health import Metrics, RequestCounting, health_routes
from office.web.i18n import LANGS
from office.web.overview import overview_routes
from office.web.passes import pass_routes
from office.web.passwords import verify_password
from office.web.remote_open import remote_open_routes
from office.web.reports import report_routes
from office.web.security import CSRF_FIELD, SignInLimiter, csrf_ok, session_hash
from office.web.trace import trace_routes

SESSION_COOKIE = "office_session"
HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}

Endpoint = Callable[[Request, User], Awaitable[Response]]


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


def local_path(target: str | None, default: str = "/overview") -> str:
    """`target` if it is a path on this site (never another host), else `default`."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def client_address(request: Request) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For only behind a trusted proxy)."""
    return request.client.host if request.client else "unknown"


class OfficeApp(OfficeWeb):
    """The app's own routes (sign-in and out, the language, home, users and audit) and the list of every
    page's routes."""

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
            await self.audit(name or "-", "signin.refused", f"from {address}: too many failures")
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
            await self.audit(name or "-", "signin.failed", f"from {address}: {why}")
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
        await self.audit(user.name, "signin", f"from {address}")
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
        await self.audit(user.name, "signout", f"from {client_address(request)}")
        return RedirectResponse("/signin", status_code=303)

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
    web = OfficeApp(store, settings, limiter or SignInLimiter(store, now=now), now)
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
