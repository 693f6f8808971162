"""Remote open from a fever alert: an office or admin user confirms, with a note, and the office sends the
kiosk a signed `CKC1` open naming the attention's entry (checkpoint/commands.py), valid `VALIDITY_S`.

The command is signed with the site's own command key ([sites.X] command_key_file), names the signed-in
user as `op`, and is published (QoS 1, never retained) on the kiosk's `cmd/open` topic through the
configured broker. The kiosk obeys it once, and only while that attention is open (kiosk/mqtt/commands.py,
kiosk/session/lane.py). Without a command key or a broker the page says why and offers no button.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkpoint.commands import issue_command
from checkpoint.configtypes import SecretError
from checkpoint.entry import Resolution
from checkpoint.topics import topics
from office.mqtt import PublishError
from office.store.base import AlertView, Role, Store, User
from office.web.core import OfficeWeb, WebSettings

OFFICE: tuple[Role, ...] = ("office", "admin")
VALIDITY_S = 60
SEARCHED_ALERTS = 200  # an attention times out at the kiosk long before 200 newer alerts arrive
MAX_NOTE = 500
RESOLUTION_SLACK = timedelta(days=1)  # kiosk clocks may be off; an attention never waits this long


def open_blocker(settings: WebSettings, site: str) -> str | None:
    """Why no remote open can be sent to `site` (a word key), or None when it can."""
    if settings.broker is None:
        return "open.no_broker"
    keys = settings.sites.get(site)
    if keys is None or (keys.command_key_file is None and keys.command_key_credential is None):
        return "open.no_key"
    return None


def operator_name(user: str) -> str:
    """The user's name as a command's `op` (letters, digits, '_' and '-'); the audit keeps the real name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", user)[:64] or "office"


def openable(view: AlertView) -> bool:
    """A fever naming its entry, and that entry (if stored) an attention still waiting at the gate."""
    alert = view.stored.alert
    return (alert.kind == "fever" and alert.entry_id is not None
            and (view.entry is None or view.entry.decision == "attention"))


def find_alert(store: Store, key: str) -> AlertView | None:
    return next((view for view in store.recent_alerts(limit=SEARCHED_ALERTS) if view.key == key), None)


def resolution_of(store: Store, view: AlertView, now: datetime) -> Resolution | None:
    """How the kiosk already ended that attention, if the collector holds its resolution."""
    alert = view.stored.alert
    found = store.resolutions_between(alert.ts - RESOLUTION_SLACK, now + RESOLUTION_SLACK,
                                      site=view.stored.site)
    return next((r.resolution for r in found if r.resolution.entry_id == alert.entry_id), None)


def remote_open_routes(web: OfficeWeb) -> list[Route]:
    """The confirmation page and the send, for office and admin users only."""
    web.templates.env.globals["open_blocker"] = lambda site: open_blocker(web.settings, site)

    async def confirm(request: Request, user: User) -> Response:
        key = request.query_params.get("alert", "")[:200]
        view, resolved = await run_in_threadpool(lookup, key)
        return page(request, user, view, key, resolved=resolved)

    def lookup(key: str) -> tuple[AlertView | None, Resolution | None]:
        view = find_alert(web.store, key) if key else None
        return view, (resolution_of(web.store, view, web.now()) if view is not None else None)

    def page(request: Request, user: User, view: AlertView | None, key: str, *, note: str = "",
             resolved: Resolution | None = None, sent: str | None = None, expires: datetime | None = None,
             error: str | None = None, status_code: int = 200) -> Response:
        problem = None
        if view is None or not openable(view):
            problem, status_code = "open.not_found", 404
        elif resolved is not None and sent is None:
            problem = "open.resolved"
        else:
            problem = open_blocker(web.settings, view.stored.site)
        return web.render(request, "remote_open.html", {
            "user": user, "view": view, "key": key, "problem": problem, "note": note, "sent": sent,
            "resolved": resolved, "expires": expires, "error": error, "validity_s": VALIDITY_S},
            status_code=status_code)

    async def send(request: Request, user: User) -> Response:
        form = await request.form()
        key = str(form.get("alert", ""))[:200]
        note = str(form.get("note", "")).strip()[:MAX_NOTE]
        view, resolved = await run_in_threadpool(lookup, key)
        if (view is None or not openable(view) or resolved is not None
                or open_blocker(web.settings, view.stored.site)):
            return page(request, user, view, key, note=note, resolved=resolved, status_code=409)
        if not note:
            return page(request, user, view, key, error="open.need_note", status_code=400)
        site, kiosk, entry = view.stored.site, view.stored.kiosk, view.stored.alert.entry_id
        nonce = secrets.token_urlsafe(18)
        now = web.now()
        broker = web.settings.broker
        assert broker is not None  # open_blocker said so
        try:
            command_key = web.settings.sites[site].command_key()
            if command_key is None:
                raise SecretError(f"sites.{site}.command_key: not configured")
            command = issue_command(command_key, None, site=site, kiosk=kiosk, cmd="open",
                                    op=operator_name(user.name), now=now, entry=entry,
                                    validity_s=VALIDITY_S, nonce=nonce)
            topic = f"{topics(site, kiosk).cmd}/open"
            await run_in_threadpool(broker.publish, topic, command)
        except (SecretError, ValueError, PublishError) as exc:
            await run_in_threadpool(web.store.audit, user.name, "alert.remote_open",
                                    f"site={site} kiosk={kiosk} entry={entry} nonce={nonce} failed: {exc} "
                                    f"note={note}", now)
            return page(request, user, view, key, note=note, error=str(exc), status_code=502)
        expires = now + timedelta(seconds=VALIDITY_S)
        await run_in_threadpool(web.store.audit, user.name, "alert.remote_open",
                                f"site={site} kiosk={kiosk} entry={entry} nonce={nonce} note={note}", now)
        return page(request, user, view, key, note=note, sent=nonce, expires=expires)

    return [
        Route("/alerts/open", web.require(OFFICE, confirm), methods=["GET"], name="alerts_open"),
        Route("/alerts/open", web.require(OFFICE, send), methods=["POST"]),
    ]
