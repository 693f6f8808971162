"""The 出入证 Passes page, for the office and admin roles: the passes (filtered by colour and household,
newest first) and those expiring in the next N days; issuing one pass or a CSV batch, signed with the
site's pass key; the printed A4 sheet of any passes; revoking passes, whose whole signed list is published
retained to the site's kiosks; and the registry comparison (unknown passes, absent households).

A holder's ID number is hashed with the site's HMAC key in memory and never stored, logged or shown (not
even back in the form after an error). A pid already in the registry is refused, naming it. Issuing and
revoking are audited with the signed-in user in the same transaction as the change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from checkpoint.configtypes import SecretError
from checkpoint.reasons import COLOURS
from office.admin.passes import (
    AdminError,
    SignedPass,
    make_pass,
    person_idh,
    sign_batch,
    validity_days,
    window,
)
from office.registry import absent_households, unknown_passes
from office.store.base import Role, User
from office.web.core import OfficeWeb
from office.web.pass_sheet import (
    HOUSEHOLD,
    PID,
    PLATFORM_REF,
    PassKeyMissing,
    pids_in,
    publish_revocations,
    sheet_markup,
    signing_key,
    signing_sites,
)

OFFICE: tuple[Role, ...] = ("office", "admin")
LIST_LIMIT = 300
MAX_DAYS = 366
MAX_BATCH_BYTES = 1_000_000  # below Starlette's in-memory spool: an upload's ID numbers never touch disk
MAX_NOTE = 500
MAX_NAME = 32


def _text(form: Mapping[str, Any], name: str, limit: int = 64) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _days(value: str | None, default: int) -> int | None:
    """Whole days 1..MAX_DAYS, `default` when empty, None when not valid."""
    if not value:
        return default
    return int(value) if value.isdigit() and 1 <= int(value) <= MAX_DAYS else None


def not_signed(exc: Exception, refused: str) -> tuple[str, int]:
    """The error (a word key) and status of a pass that was not signed: no pass key or site key (409), or
    the pass itself refused (`refused`, 400)."""
    if isinstance(exc, PassKeyMissing):
        return "passes.no_key", 409
    if isinstance(exc, SecretError):
        return "passes.no_hmac_key", 409
    return refused, 400


def pass_routes(web: OfficeWeb) -> list[Route]:
    """The pages and their forms, for office and admin users only."""
    tz = web.settings.tz
    web.templates.env.filters["day"] = lambda nbf: validity_days(nbf, nbf + 1, tz)[0]
    web.templates.env.filters["last_day"] = lambda exp: validity_days(exp - 1, exp, tz)[1]

    def today() -> str:
        return web.now().astimezone(tz).date().isoformat()

    async def listing(request: Request, user: User) -> Response:
        params = request.query_params
        cat, hh = params.get("cat", "").strip(), params.get("hh", "").strip()[:64]
        days = _days(params.get("days", "").strip(), 7)
        errors = []
        if cat and cat not in COLOURS:
            errors.append("passes.bad_cat")
        if hh and not HOUSEHOLD.fullmatch(hh):
            errors.append("passes.bad_hh")
        if days is None:
            errors.append("passes.bad_days")
        now = web.now()
        rows, expiring = [], []
        if not errors:
            rows = await run_in_threadpool(lambda: web.store.pass_records(
                cat=cat or None, hh=hh or None, limit=LIST_LIMIT))
            until = now + timedelta(days=days or 7)
            expiring = await run_in_threadpool(web.store.expiring_passes, now, until)
        return web.render(request, "passes.html", {
            "user": user, "rows": rows, "expiring": expiring, "colours": COLOURS, "errors": errors,
            "form": {"cat": cat, "hh": hh, "days": params.get("days", "7")[:4]}, "limit": LIST_LIMIT,
            "now_s": int(now.timestamp())}, status_code=400 if errors else 200)

    def issue_page(request: Request, user: User, *, form: Mapping[str, str] | None = None,
                   errors: list[str] | None = None, detail: str = "", issued: list[SignedPass] | None = None,
                   status_code: int = 200) -> Response:
        sites = signing_sites(web.settings)
        values = {"site": sites[0] if sites else "", "from": today(), "days": "30", **(form or {})}
        return web.render(request, "passes_issue.html", {
            "user": user, "sites": sites, "colours": COLOURS, "form": values, "errors": errors or [],
            "detail": detail, "issued": issued or [], "sheet_link": _sheet_link(issued or [])},
            status_code=status_code)

    async def issue_form(request: Request, user: User) -> Response:
        return issue_page(request, user)

    def validity(form: FormData | Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
        start, end, days = _text(form, "from", 32), _text(form, "to", 32), _text(form, "days", 8)
        if end:
            with contextlib.suppress(ValueError):  # else window() names it
                end = (datetime.fromisoformat(end).date() + timedelta(days=1)).isoformat()
            days = ""
        return start or None, end or None, days or None

    async def finish(request: Request, user: User, site: str, passes: list[SignedPass],
                     form: dict[str, str]) -> Response:
        taken = await run_in_threadpool(lambda: web.store.issue_passes(
            site, [(p, p.text) for p in passes], by=user.name, at=web.now()))
        if taken:
            return issue_page(request, user, form=form, errors=["passes.taken"], detail=", ".join(taken),
                              status_code=409)
        return issue_page(request, user, issued=passes, status_code=201)

    async def issue_one(request: Request, user: User) -> Response:
        form = await request.form()
        site, pid, cat, hh = (_text(form, name) for name in ("site", "pid", "cat", "hh"))
        name = _text(form, "name", MAX_NAME)
        hpr = _text(form, "hpr", 128)
        kept = {"site": site, "pid": pid, "cat": cat, "hh": hh, "name": name, "from": _text(form, "from"),
                "to": _text(form, "to"), "days": _text(form, "days"), "hpr": hpr}  # never the ID number
        errors = [key for key, bad in (("passes.bad_pid", not PID.fullmatch(pid)),
                                       ("passes.bad_cat", cat not in COLOURS),
                                       ("passes.bad_hh", bool(hh) and not HOUSEHOLD.fullmatch(hh)),
                                       ("passes.need_name", not name),
                                       ("passes.bad_hpr", bool(hpr) and not PLATFORM_REF.fullmatch(hpr)))
                  if bad]
        id_number, idh = _text(form, "id_number", 40), _text(form, "idh", 80)
        if not id_number and not idh:
            errors.append("passes.need_person")
        if errors:
            return issue_page(request, user, form=kept, errors=errors, status_code=400)
        try:
            key = signing_key(web.settings, site)
            hmac_key = web.settings.sites[site].hmac_key() if id_number else None
            if id_number and hmac_key is None:
                return issue_page(request, user, form=kept, errors=["passes.no_hmac_key"], status_code=409)
            start, end, days = validity(form)
            nbf, exp = window(start, end, days, tz=tz, now=int(web.now().timestamp()))
            person = person_idh(id_number=id_number or None, idh=idh or None, key=hmac_key)
            issued = make_pass(key, None, pid=pid, cat=cat, hh=hh or None, name=name, idh=person, nbf=nbf,
                               exp=exp, hpr=hpr or None)
        except (PassKeyMissing, SecretError, AdminError) as exc:
            error, status = not_signed(exc, "passes.refused")
            return issue_page(request, user, form=kept, errors=[error], detail=str(exc), status_code=status)
        return await finish(request, user, site, [issued], kept)

    async def issue_batch(request: Request, user: User) -> Response:
        form = await request.form()
        site = _text(form, "site")
        kept = {"site": site, "from": _text(form, "from"), "days": _text(form, "days")}
        upload = form.get("batch")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return issue_page(request, user, form=kept, errors=["passes.need_file"], status_code=400)
        raw = await upload.read(MAX_BATCH_BYTES + 1)
        if len(raw) > MAX_BATCH_BYTES:
            return issue_page(request, user, form=kept, errors=["passes.file_too_big"], status_code=413)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return issue_page(request, user, form=kept, errors=["passes.not_utf8"], status_code=400)
        try:
            key = signing_key(web.settings, site)
            start, _, days = validity(form)
            passes = sign_batch(text, Path(Path(upload.filename).name), key, None,
                                site=web.settings.sites[site].hmac_key(), tz=tz, nbf=start, exp=None,
                                days=days)
        except (PassKeyMissing, SecretError, AdminError) as exc:
            error, status = not_signed(exc, "passes.batch_refused")
            return issue_page(request, user, form=kept, errors=[error], detail=str(exc), status_code=status)
        return await finish(request, user, site, passes, kept)

    async def sheet(request: Request, user: User) -> Response:
        wanted, bad = pids_in(" ".join(request.query_params.getlist("pid")))
        records = await run_in_threadpool(web.store.passes_of, wanted[:LIST_LIMIT]) if wanted else []
        missing = [p for p in wanted if p not in {r.issued.pid for r in records if r.text}]
        return web.render(request, "pass_sheet.html", {
            "user": user, "cards": sheet_markup(records, web.settings), "missing": missing + bad,
            "count": sum(1 for r in records if r.text)}, status_code=200 if records else 404)

    async def revoke_page(request: Request, user: User, *, form: Mapping[str, str] | None = None,
                          errors: list[str] | None = None, detail: str = "", done: list[str] | None = None,
                          status_code: int = 200) -> Response:
        sites = signing_sites(web.settings)
        states = await run_in_threadpool(lambda: [web.store.revocation_state(site) for site in sites])
        revoked = await run_in_threadpool(web.store.revocations)
        values = {"site": sites[0] if sites else "", "pids": "", "note": "", **(form or {})}
        return web.render(request, "passes_revoke.html", {
            "user": user, "sites": sites, "states": states, "revoked": revoked, "form": values,
            "errors": errors or [], "detail": detail, "done": done}, status_code=status_code)

    async def revoke_form(request: Request, user: User) -> Response:
        pids = " ".join(pids_in(" ".join(request.query_params.getlist("pid")))[0])
        return await revoke_page(request, user, form={"pids": pids})

    async def revoke(request: Request, user: User) -> Response:
        form = await request.form()
        site, note = _text(form, "site"), _text(form, "note", MAX_NOTE)
        pids, bad = pids_in(_text(form, "pids", 20_000))
        kept = {"site": site, "pids": " ".join(pids), "note": note}
        errors = [key for key, wrong in (("passes.bad_pids", bool(bad) or not pids),
                                         ("passes.need_note", not note)) if wrong]
        if errors:
            return await revoke_page(request, user, form=kept, errors=errors, detail=", ".join(bad),
                                     status_code=400)
        try:
            signing_key(web.settings, site)
        except PassKeyMissing as exc:
            return await revoke_page(request, user, form=kept, errors=["passes.no_key"], detail=str(exc),
                               status_code=409)
        new, state = await run_in_threadpool(lambda: web.store.revoke_passes(
            site, pids, by=user.name, at=web.now(), note=note))
        if not new:
            return await revoke_page(request, user, form=kept, errors=["passes.already_revoked"],
                                     status_code=409)
        problem = await run_in_threadpool(publish_revocations, web, site, state.serial, state.revoked)
        return await revoke_page(request, user, done=new, errors=["passes.not_published"] if problem else [],
                                 detail=problem or "", status_code=502 if problem else 200)

    async def publish_again(request: Request, user: User) -> Response:
        form = await request.form()
        site = _text(form, "site")
        if site not in signing_sites(web.settings):
            return await revoke_page(request, user, errors=["passes.no_key"], detail=site, status_code=409)
        state = await run_in_threadpool(lambda: web.store.renumber_revocations(site, by=user.name,
                                                                               at=web.now()))
        problem = await run_in_threadpool(publish_revocations, web, site, state.serial, state.revoked)
        if problem:
            return await revoke_page(request, user, errors=["passes.not_published"], detail=problem,
                                     status_code=502)
        return RedirectResponse("/passes/revoke", status_code=303)

    async def registry(request: Request, user: User) -> Response:
        params = request.query_params
        days, absent_days = _days(params.get("days"), 7), _days(params.get("absent_days"), 7)
        form = {"days": params.get("days", "7")[:4], "absent_days": params.get("absent_days", "7")[:4]}
        if days is None or absent_days is None:
            return web.render(request, "passes_registry.html", {
                "user": user, "form": form, "errors": ["passes.bad_days"], "unknown": [], "absent": []},
                status_code=400)
        now = web.now()
        unknown = await run_in_threadpool(unknown_passes, web.store, now - timedelta(days=days), now)
        absent = await run_in_threadpool(lambda: absent_households(web.store, days=absent_days, now=now))
        return web.render(request, "passes_registry.html", {
            "user": user, "form": form, "errors": [], "unknown": unknown, "absent": absent})

    return [
        Route("/passes", web.require(OFFICE, listing), name="passes"),
        Route("/passes/issue", web.require(OFFICE, issue_form), methods=["GET"], name="passes_issue"),
        Route("/passes/issue", web.require(OFFICE, issue_one), methods=["POST"]),
        Route("/passes/batch", web.require(OFFICE, issue_batch), methods=["POST"], name="passes_batch"),
        Route("/passes/sheet", web.require(OFFICE, sheet), name="passes_sheet"),
        Route("/passes/revoke", web.require(OFFICE, revoke_form), methods=["GET"], name="passes_revoke"),
        Route("/passes/revoke", web.require(OFFICE, revoke), methods=["POST"]),
        Route("/passes/publish", web.require(OFFICE, publish_again), methods=["POST"], name="passes_publish"),
        Route("/passes/registry", web.require(OFFICE, registry), name="passes_registry"),
    ]


def _sheet_link(passes: list[SignedPass]) -> str:
    return "/passes/sheet?" + "&".join(f"pid={p.pid}" for p in passes) if passes else ""
