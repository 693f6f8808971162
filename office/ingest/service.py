"""`kiosk-office run`: the store, MQTT ingest, the daily schedule (retention purge, report) and the web app.

Threads: `ingest` (batches to the writer, acks after their commit), paho's network thread, `schedule`
(purge and reports on their own store connection, so a slow report never holds up ingest) and `web`
(uvicorn, office/web/server.py, on a third connection; stopped first). With
`ingest.writer = "process"` (the default) the writer is a child process, `store-writer`, whose results
the `store-results` thread reads (office/ingest/writer_process.py). They share one stop event, set by
SIGTERM or SIGINT, and are joined on the way out. The watchdog is pinged only while the ingest worker,
the writer and the web server are alive and turning.

The schedule runs in `report.timezone`. A run missed while the collector was down runs once at start:
the state (the last day of a report run and of a purge) is a small JSON file in `report.out_dir`. A
report run from noon on covers its own day; an earlier one (e.g. 00:10) the day before, which is whole.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

from checkpoint.configtypes import SecretError
from checkpoint.systemd import sd_notify
from checkpoint.topics import report_topic
from office.config import OfficeConfig, clock_time
from office.ingest.subscriber import Ingest, IngestStats
from office.ingest.writer import BatchWriter, Writer, open_configured_store
from office.ingest.writer_process import WriterProcess
from office.reports.daily import DailyReport, daily_report
from office.reports.render import Format, render, render_png
from office.store.base import Store
from office.web.server import WebError, WebServer

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0
WATCHDOG_STALE_S = 20.0  # the ingest worker must have turned within this (the unit's WatchdogSec=30s)
STATS_EVERY_S = 60.0
SCHEDULE_TICK_S = 20.0
RETRY_AFTER_S = 600.0  # a failed scheduled job is tried again after this
CATCH_UP_DAYS = 7  # reports missed for longer than this are not made automatically
STATE_FILE = ".schedule.json"
SCHEDULE_USER = "schedule"  # who made a report the daily schedule made
EXTENSIONS = {"json": "json", "png": "png", "csv": "csv", "text": "txt"}


def due_days(last_done: date | None, now: datetime, tz: ZoneInfo, at: clock,
             catch_up: int = CATCH_UP_DAYS) -> list[date]:
    """Local days whose run at `at` is due by `now` and later than `last_done` (only the latest if None)."""
    today = now.astimezone(tz).date()
    due = [day for day in (today - timedelta(days=n) for n in range(catch_up, -1, -1))
           if datetime.combine(day, at, tzinfo=tz) <= now and (last_done is None or day > last_done)]
    return due[-1:] if last_done is None else due


def report_day(run_day: date, at: clock) -> date:
    """The day a report run covers: that day from noon on (23:55), the day before if earlier (00:10)."""
    return run_day if at.hour >= 12 else run_day - timedelta(days=1)


def make_reports(store: Store, day: date, site: str, tz: ZoneInfo,
                 formats: Sequence[Format]) -> dict[str, bytes]:
    """The day's report for one site in each format."""
    daily = daily_report(store, day, site=site, tz=tz)
    return {fmt: render(daily, fmt) for fmt in formats}


def keep_report(store: Store, daily: DailyReport, *, by: str, names: Mapping[str, str] | None = None
                ) -> dict[str, bytes]:
    """Render the report as JSON, CSV and PNG, keep them in the store (the web app's history) and return
    them by format."""
    rendered = {"json": render(daily, "json"), "csv": render(daily, "csv"), "png": render_png(daily, names)}
    store.keep_report(daily.site, daily.day, made_at=daily.generated_at, made_by=by, zero=daily.zero,
                      json_text=rendered["json"].decode("utf-8"), csv_text=rendered["csv"].decode("utf-8"),
                      png=rendered["png"])
    return rendered


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Schedule:
    """The daily retention purge and report, with the state that makes missed runs run once."""

    def __init__(self, config: OfficeConfig, store: Store, *, publish: Callable[[str, bytes], bool],
                 now: Callable[[], datetime]) -> None:
        self.config = config
        self.store = store
        self.publish = publish
        self.now = now
        self.state_path = config.report.out_dir / STATE_FILE
        self.state: dict[str, str] = self._load()
        self._retry_at: dict[str, float] = {}

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("schedule state %s unreadable (%s); starting afresh", self.state_path, exc)
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def _done(self, job: str, day: date) -> None:
        self.state[job] = day.isoformat()
        try:
            _write_atomic(self.state_path, json.dumps(self.state, sort_keys=True).encode())
        except OSError as exc:
            log.error("cannot save the schedule state to %s: %s", self.state_path, exc)

    def _last(self, job: str) -> date | None:
        try:
            return date.fromisoformat(self.state[job]) if job in self.state else None
        except ValueError:
            return None

    def tick(self) -> None:
        """Run whatever is due (a failed job waits RETRY_AFTER_S before the next try)."""
        for job, at, action in (("purge", self.config.retention.purge_time, self._purge),
                                ("report", self.config.report.time, self._report)):
            if time.monotonic() < self._retry_at.get(job, 0.0):
                continue
            days = due_days(self._last(job), self.now(), self.config.report.zone, clock_time(at))
            if job == "purge":
                days = days[-1:]  # one purge covers every missed day
            for day in days:
                try:
                    action(day)
                except ImportError as exc:
                    log.warning("no daily report yet (%s); trying again in %g s", exc, RETRY_AFTER_S)
                    self._retry_at[job] = time.monotonic() + RETRY_AFTER_S
                    break
                except Exception as exc:
                    log.error("scheduled %s for %s failed: %s: %s; retrying in %g s", job, day,
                              type(exc).__name__, exc, RETRY_AFTER_S)
                    self._retry_at[job] = time.monotonic() + RETRY_AFTER_S
                    break
                self._done(job, day)

    def _purge(self, day: date) -> None:
        now = self.now()
        before = now - timedelta(days=self.config.retention.days)
        count = self.store.purge(before, now=now)
        log.info("retention: purged %d entries older than %s (%d days)", count,
                 before.astimezone(UTC).isoformat(timespec="seconds"), self.config.retention.days)

    def sites(self) -> list[str]:
        """The configured sites and every site heard from."""
        return sorted(set(self.config.sites) | {site for site, _ in self.store.kiosks()})

    def _report(self, run_day: date) -> None:
        cfg = self.config.report
        day = report_day(run_day, clock_time(cfg.time))
        formats = list(dict.fromkeys([*cfg.formats, "json"] if cfg.publish else cfg.formats))
        published, sites = 0, self.sites()
        names = {name: section.name for name, section in self.config.sites.items() if section.name}
        for site in sites:
            daily = daily_report(self.store, day, site=site, tz=cfg.zone)
            rendered = keep_report(self.store, daily, by=SCHEDULE_USER, names=names)
            rendered.update({fmt: render(daily, fmt) for fmt in formats if fmt not in rendered})
            for fmt in cfg.formats:
                name = f"{site}-{day.isoformat()}.{EXTENSIONS[fmt]}"
                _write_atomic(cfg.out_dir / site / name, rendered[fmt])
            if cfg.publish and self.publish(report_topic(site), rendered["json"]):
                published += 1
        log.info("daily report for %s: %d site(s) written to %s, %d published", day, len(sites),
                 cfg.out_dir, published)

    def run(self, stop: threading.Event) -> None:
        """Tick now and then every SCHEDULE_TICK_S until stopped."""
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("the schedule failed; trying again at the next tick")
            if stop.wait(SCHEDULE_TICK_S):
                return


def _stats_line(s: IngestStats, connected: bool, healthy: bool) -> str:
    gaps = "?" if s.open_gaps is None else str(s.open_gaps)
    state = f"{'connected' if connected else 'NOT CONNECTED'}, store {'ok' if healthy else 'FAILING'}"
    return (f"ingest: {state}; {s.received} messages, {s.entries} new entries, {s.duplicates} duplicates, "
            f"{s.statuses} statuses, {s.alerts} alerts, {s.dead_letters} dead letters, {gaps} open seq gaps")


class Collector:
    """The office process: `run()` until SIGTERM/SIGINT or `stop`.

    It runs ingest with the schedule when `ingest.enabled`, and the web app when `serve_web` (what
    `kiosk-office run` passes from `web.enabled`; the simulator runs ingest alone).
    """

    def __init__(self, config: OfficeConfig, *, stop: threading.Event | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), serve_web: bool = False) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.now = now
        self.serve_web = serve_web
        self.ingest: Ingest | None = None
        self.web: WebServer | None = None

    def run(self) -> int:
        """The service; 0 after a requested stop, 1 when it cannot run or a part of it died."""
        stop = self.stop
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        cfg = self.config
        with ExitStack() as stack:
            try:
                password = cfg.broker.password() if cfg.ingest.enabled else None
                schedule_store = stack.enter_context(open_configured_store(cfg))
                web_store = stack.enter_context(open_configured_store(cfg)) if self.serve_web else None
                writer = self._writer(stack) if cfg.ingest.enabled else None
            except SecretError as exc:
                log.error("%s", exc)
                return 1
            except Exception as exc:
                log.error("cannot open the %s store: %s: %s", cfg.store.kind, type(exc).__name__, exc)
                return 1
            ingest: Ingest | None = None
            threads: list[threading.Thread] = []
            if writer is not None:
                try:
                    ingest = self.ingest = Ingest(cfg.broker, cfg.ingest, writer, stop=stop,
                                                  password=password)
                except (OSError, ValueError) as exc:  # e.g. an unreadable CA file
                    log.error("cannot set up the MQTT client: %s: %s", type(exc).__name__, exc)
                    return 1
                schedule = Schedule(cfg, schedule_store, publish=ingest.publish, now=self.now)
                threads.append(threading.Thread(target=schedule.run, args=(stop,), name="schedule"))
                ingest.start()
                for thread in threads:
                    thread.start()
                log.info("ingest %s running: %s store, broker %s:%d, batches of %d / %d ms",
                         cfg.broker.client_id, cfg.store.kind, cfg.broker.host, cfg.broker.port,
                         cfg.ingest.batch_size, cfg.ingest.batch_ms)
            if web_store is not None:
                try:
                    self.web = WebServer(cfg, web_store, now=self.now).start()
                except (SecretError, WebError) as exc:
                    log.error("web: %s", exc)
                    status = 1
                else:
                    sd_notify("READY=1")
                    status = self._supervise(ingest, self.web)
            else:
                sd_notify("READY=1")
                status = self._supervise(ingest, None)
            sd_notify("STOPPING=1")
            stop.set()
            if self.web is not None:
                self.web.stop(JOIN_TIMEOUT_S)
            if ingest is not None:
                ingest.close(JOIN_TIMEOUT_S)
            for thread in threads:
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("thread %s did not stop within %g s", thread.name, JOIN_TIMEOUT_S)
        return status

    def _writer(self, stack: ExitStack) -> Writer:
        """The ingest writer: a child process, or this process with its own store connection."""
        if self.config.ingest.writer == "process":
            return stack.enter_context(WriterProcess(self.config, stop=self.stop))
        store = stack.enter_context(open_configured_store(self.config))
        return BatchWriter(store, max_payload=self.config.ingest.max_payload_bytes, stop=self.stop)

    def _supervise(self, ingest: Ingest | None, web: WebServer | None) -> int:
        """Ping the watchdog while every part turns; log the ingest counters now and then."""
        last_line, last_log = "", time.monotonic()
        while not self.stop.wait(1.0):
            if ingest is not None and not ingest.worker_alive:
                log.error("the ingest worker died; stopping so that systemd restarts the service")
                return 1
            if web is not None and not web.alive:
                log.error("the web server stopped; stopping so that systemd restarts the service")
                return 1
            if ingest is None or time.monotonic() - ingest.heartbeat < WATCHDOG_STALE_S:
                sd_notify("WATCHDOG=1")
            if ingest is not None and time.monotonic() - last_log >= STATS_EVERY_S:
                line = _stats_line(ingest.stats(), ingest.connected, ingest.healthy)
                if line != last_line:
                    (log.info if ingest.healthy else log.error)("%s", line)
                last_line, last_log = line, time.monotonic()
        return 0


def run(config: OfficeConfig, *, stop: threading.Event | None = None,
        now: Callable[[], datetime] | None = None) -> int:
    """Run the office service (ingest and the web app, as configured) until it is stopped."""
    serve_web = config.web.enabled
    if now is None:
        return Collector(config, stop=stop, serve_web=serve_web).run()
    return Collector(config, stop=stop, now=now, serve_web=serve_web).run()
