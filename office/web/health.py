"""`/healthz` for probes and `/metrics` for Prometheus.

`/healthz` needs no sign-in and says only whether the store answers. `/metrics` is open to loopback clients
(a Prometheus on this machine, which cannot sign in) and otherwise needs the admin role. Behind a reverse
proxy on this machine every client looks like loopback unless the proxy sets X-Forwarded-For (uvicorn
trusts it from 127.0.0.1), so the proxy must set it, or not forward /metrics.

Each app has its own `CollectorRegistry`; the store's figures are read when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkpoint import __version__
from office.store.base import Role, StoreError, User
from office.web.core import OfficeWeb

ADMIN: tuple[Role, ...] = ("admin",)
LOOPBACK = frozenset({"127.0.0.1", "::1"})
KIOSK_STATES = ("online", "offline", "silent")


class StoreFigures(Collector):
    """Entries stored, kiosks by state and open alerts, read from the store at each scrape."""

    def __init__(self, web: OfficeWeb) -> None:
        self.web = web

    def collect(self) -> Iterator[Metric]:
        entries = GaugeMetricFamily("office_entries_stored", "Entries in the store (not the purged).")
        entries.add_metric([], self.web.store.count_entries())
        yield entries
        kiosks = GaugeMetricFamily("office_kiosks", "Kiosks by state (silent: online, but no heartbeat).",
                                   labels=["state"])
        rows = self.web.kiosk_rows()
        for state in KIOSK_STATES:
            kiosks.add_metric([state], sum(1 for row in rows if row.state == state))
        yield kiosks
        alerts = GaugeMetricFamily("office_open_alerts", "Stored alerts not yet resolved.")
        alerts.add_metric([], self.web.store.open_alerts(limit=1)[1])
        yield alerts


class Metrics:
    """One app's registry: the request counter, build info and the store's figures."""

    def __init__(self, web: OfficeWeb) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("office_web_requests", "Web requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        Info("office_build", "The office's version.", registry=self.registry).info({"version": __version__})
        self.registry.register(StoreFigures(web))


class RequestCounting:
    """Counts each HTTP request by its route's path template (never the path itself) and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status[0])).inc()


def health_routes(web: OfficeWeb, metrics: Metrics) -> list[Route]:
    """`/healthz` for anyone, `/metrics` for loopback or an admin."""

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(web.store.ping)
        except StoreError:
            return JSONResponse({"status": "failing", "store": "failing"}, status_code=503)
        return JSONResponse({"status": "ok", "store": "ok"})

    async def scrape(request: Request, user: User | None = None) -> Response:
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    for_admins = web.require(ADMIN, scrape, api=True)

    async def metrics_endpoint(request: Request) -> Response:
        if request.client is not None and request.client.host in LOOPBACK:
            return await scrape(request)
        return await for_admins(request)

    return [
        Route("/healthz", healthz, name="healthz"),
        Route("/metrics", metrics_endpoint, name="metrics"),
    ]
