"""The 日报 Reports page: a day's report computed live (today by default; kept `LIVE_FOR_S`, so that the page
and its chart read the day's entries once) with its Chinese PNG chart, the
history of every report made (by the ingest's daily schedule or here, each version kept in the store, so
a web process on another machine serves them too), and "make the report of day X" for the office.

Downloads (CSV with a UTF-8 BOM, JSON, the PNG as a file) are audited as `report.export`; making a report
as `report.make`. `report_routes(web)` gives the routes; app.py lists them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from office.reports.daily import DailyReport, daily_report, report_refusal
from office.reports.render import render, render_png
from office.store.base import Role, User
from office.web.core import OfficeWeb

OFFICE: tuple[Role, ...] = ("office", "admin")
BOM = "\ufeff"
HISTORY = 200
KINDS = {"png": "image/png", "csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8"}
MAX_SITE = 64
LIVE_FOR_S = 15.0  # a live report is shown again for this long before the day's entries are read anew
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Asked:
    """The day and site a request asks for (site None: every site); `error` a translation key."""

    day: date
    site: str | None
    error: str | None = None

    def query(self) -> str:
        return urlencode({"day": self.day.isoformat(), **({"site": self.site} if self.site else {})})


def parse_asked(params: Mapping[str, Any], today: date) -> Asked:
    """The day (default today) and site of a form or query; a bad field is named in `error`."""
    text = str(params.get("day", "") or "").strip()
    site = str(params.get("site", "") or "").strip() or None
    if site is not None and (len(site) > MAX_SITE or not site.isprintable()):
        return Asked(today, None, "reports.bad_site")
    try:
        day = date.fromisoformat(text) if text else today
    except ValueError:
        return Asked(today, site, "reports.bad_day")
    return Asked(day, site)


def number(text: str) -> int | None:
    """A kept report's number from its path; None for anything else."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def download(data: bytes, kind: str, name: str) -> Response:
    body = BOM.encode() + data if kind == "csv" else data
    return Response(body, media_type=KINDS[kind],
                    headers={"content-disposition": f'attachment; filename="{name}.{kind}"'})


class Recent(Generic[K, V]):
    """`compute(key)`, kept for `max_age_s`: the page and its chart, and everyone looking within a few
    seconds, share one reading of the day's entries."""

    def __init__(self, compute: Callable[[K], V], max_age_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.compute, self.max_age_s, self.clock = compute, max_age_s, clock
        self._lock = threading.Lock()
        self._kept: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V:
        now = self.clock()
        with self._lock:
            self._kept = {k: kept for k, kept in self._kept.items() if now - kept[0] < self.max_age_s}
            if key in self._kept:
                return self._kept[key][1]
        value = self.compute(key)
        with self._lock:
            self._kept[key] = (now, value)
        return value


def report_routes(web: OfficeWeb) -> list[Route]:
    """The live report, the history, making a report and the downloads, for the office and admin roles."""
    tz = web.settings.tz

    def names() -> dict[str, str]:
        return {name: site.name for name, site in web.settings.sites.items() if site.name}

    def sites() -> list[str]:
        return sorted(set(web.settings.sites) | {site for site, _ in web.store.kiosks()})

    def today() -> date:
        return web.now().astimezone(tz).date()

    def fresh(asked: Asked) -> tuple[DailyReport | None, str | None]:
        refusal = report_refusal(web.store, asked.day, site=asked.site, tz=tz, now=web.now())
        if refusal is not None:
            return None, "reports.refused"
        return daily_report(web.store, asked.day, site=asked.site, tz=tz, now=web.now()), None

    recent = Recent(fresh, LIVE_FOR_S)

    def live(asked: Asked) -> tuple[DailyReport | None, str | None]:
        return recent.get(asked)

    def context(request: Request, user: User, asked: Asked) -> dict[str, Any]:
        return {"user": user, "names": names(), "sites": sites(), "form_day": asked.day.isoformat(),
                "form_site": asked.site or "", "today": today().isoformat(),
                "history": web.store.kept_reports(limit=HISTORY), "kept": None, "error": asked.error}

    async def page(request: Request, user: User) -> Response:
        asked = parse_asked(request.query_params, today())
        ctx = await run_in_threadpool(context, request, user, asked)
        report = None
        if asked.error is None:
            report, ctx["error"] = await run_in_threadpool(live, asked)
        ctx.update(report=report.to_json() if report else None, png_url=f"/reports/live.png?{asked.query()}",
                   downloads=[(kind, f"/reports/live.{kind}?{asked.query()}") for kind in ("csv", "json")])
        return web.render(request, "reports.html", ctx, status_code=400 if ctx["error"] else 200)

    async def live_file(request: Request, user: User) -> Response:
        kind = request.path_params["kind"]
        asked = parse_asked(request.query_params, today())
        if kind not in KINDS or asked.error:
            return Response("not found", status_code=404, media_type="text/plain; charset=utf-8")
        report, error = await run_in_threadpool(live, asked)
        if report is None:
            return Response(str(error), status_code=400, media_type="text/plain; charset=utf-8")
        if kind == "png":
            data = await run_in_threadpool(render_png, report, names())
            if request.query_params.get("download") != "1":
                return Response(data, media_type=KINDS[kind], headers={"cache-control": "no-store"})
        else:
            data = render(report, "csv" if kind == "csv" else "json")
        detail = f"live {kind} day={asked.day.isoformat()} site={asked.site or '*'}"
        await run_in_threadpool(web.store.audit, user.name, "report.export", detail, web.now())
        return download(data, kind, f"report-{asked.site or 'all'}-{asked.day.isoformat()}")

    async def make(request: Request, user: User) -> Response:
        form = await request.form()
        asked = parse_asked({"day": form.get("day"), "site": form.get("site")}, today())
        error: str | None = asked.error
        report = None
        if error is None:
            report, error = await run_in_threadpool(fresh, asked)  # a report to keep is made anew
        if report is None:
            ctx = await run_in_threadpool(context, request, user, asked)
            ctx.update(error=error, report=None, png_url="", downloads=[])
            return web.render(request, "reports.html", ctx, status_code=400)
        made = report

        def keep() -> int:
            rendered = {"json": render(made, "json"), "csv": render(made, "csv")}
            n = web.store.keep_report(made.site, made.day, made_at=made.generated_at, made_by=user.name,
                                      zero=made.zero, json_text=rendered["json"].decode("utf-8"),
                                      csv_text=rendered["csv"].decode("utf-8"), png=render_png(made, names()))
            web.store.audit(user.name, "report.make",
                            f"#{n} day={made.day.isoformat()} site={made.site or '*'} zero={made.zero}",
                            web.now())
            return n

        n = await run_in_threadpool(keep)
        return RedirectResponse(f"/reports/{n}", status_code=303)

    async def kept_page(request: Request, user: User) -> Response:
        n = number(request.path_params["n"])
        files = None if n is None else await run_in_threadpool(web.store.kept_report, n)
        if files is None:
            return Response("no such report", status_code=404, media_type="text/plain; charset=utf-8")
        kept = files.report
        asked = Asked(kept.day, kept.site or None)
        ctx = await run_in_threadpool(context, request, user, asked)
        ctx.update(kept=kept, report=json.loads(files.json_text),
                   png_url=f"/reports/{n}.png" if files.png else "",
                   downloads=[(kind, f"/reports/{n}.{kind}") for kind in ("csv", "json")])
        return web.render(request, "reports.html", ctx)

    async def kept_file(request: Request, user: User) -> Response:
        n, kind = number(request.path_params["n"]), request.path_params["kind"]
        files = None if n is None else await run_in_threadpool(web.store.kept_report, n)
        if files is None or kind not in KINDS or (kind == "png" and files.png is None):
            return Response("not found", status_code=404, media_type="text/plain; charset=utf-8")
        data = {"png": files.png or b"", "csv": files.csv_text.encode("utf-8"),
                "json": files.json_text.encode("utf-8")}[kind]
        if kind == "png" and request.query_params.get("download") != "1":
            return Response(data, media_type=KINDS[kind])
        kept = files.report
        await run_in_threadpool(web.store.audit, user.name, "report.export",
                                f"#{n} {kind} day={kept.day.isoformat()} site={kept.site or '*'}", web.now())
        return download(data, kind, f"report-{kept.site or 'all'}-{kept.day.isoformat()}-{n}")

    return [
        Route("/reports", web.require(OFFICE, page), name="reports"),
        Route("/reports/make", web.require(OFFICE, make), methods=["POST"], name="reports_make"),
        Route("/reports/live.{kind:str}", web.require(OFFICE, live_file), name="reports_live"),
        Route("/reports/{n:str}.{kind:str}", web.require(OFFICE, kept_file), name="reports_kept_file"),
        Route("/reports/{n:str}", web.require(OFFICE, kept_page), name="reports_kept"),
    ]
