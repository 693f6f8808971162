"""Office web app benchmark: page times over a big store, and fever-to-browser latency over SSE.

    python -m bench.office [--entries 1000000] [--kiosks 200] [--streams 50] [--no-pg]

For SQLite and for PostgreSQL (a throwaway server, as the tests start one), it fills a store with
`--entries` entries from `--kiosks` kiosks over the last 28 days, then times each page through the real
app (Starlette's TestClient: routing, the guard, the store and the templates, no network): the overview,
a filtered entries page, today's report and a trace of one household over 14 days (median and p95 of
`--requests`; target under 300 ms each). Then it serves the app with uvicorn on 127.0.0.1, opens
`--streams` signed-in event streams on /alerts/events, stores fever alerts one by one and measures, on
every stream, the time from the store's commit to the event's arrival (p50, p95; target p95 under 1 s).
It prints tables; docs/benchmarks.md keeps the results with the date and machine.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import uvicorn
from starlette.testclient import TestClient
from uuid6 import uuid7

from checkpoint.entry import ENTRY_SCHEMA, Alert, Entry, Status
from checkpoint.reasons import Reason
from kiosk.mqtt.local_broker import free_port
from office.reports.daily import daily_report
from office.store.base import Store, StoredAlert
from office.store.opening import open_store
from office.web.app import create_app
from office.web.passwords import hash_password

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 1"
KEY = b"b" * 32
DAYS = 28
SITES = 4
BATCH = 10_000
HOUSEHOLDS = 5_000
TARGET_MS = 300.0
ZONE = ZoneInfo("Asia/Shanghai")  # the web settings' default report zone


def _template() -> Entry:
    return Entry.model_validate({
        "schema": ENTRY_SCHEMA, "id": str(uuid7()), "site": "s1", "kiosk": "k-000", "seq": 1,
        "ts": datetime.now(UTC), "direction": "in", "decision": "allow", "reasons": [], "override": None,
        "temperature": {"skin_c": 34.6, "body_c": 36.5, "ambient_c": 18.0, "samples": 5},
        "health": {"scheme": "token", "status": "green"},
        "pass": {"pid": "P-00001", "cat": "green", "hh": "1-1-101"},
        "person": {"ref": "ab" * 32, "masked": "3701**************"},
        "timing_ms": {"decode": 5.0, "decide": 0.2, "session": 1500.0},
    })


Batch = list[tuple[Entry, bytes]]


def entries(total: int, kiosks: int, now: datetime, rng: random.Random) -> Iterator[Batch]:
    """`total` entries in batches, each kiosk's in seq order over the last DAYS days (copies of one
    validated entry with fields replaced: validation is the ingest's cost, not this benchmark's)."""
    template = _template()
    per_kiosk = total // kiosks
    start = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / per_kiosk
    batch: Batch = []
    for k in range(kiosks):
        site, kiosk = f"s{k % SITES + 1}", f"k-{k:03d}"
        for seq in range(1, per_kiosk + 1):
            ts = start + step * seq + timedelta(milliseconds=k)
            roll = rng.random()
            decision, reasons = "allow", list[Reason]()
            if roll < 0.05:
                decision, reasons = "deny", [Reason.HEALTH_CODE_YELLOW]
            elif roll < 0.06:
                decision, reasons = "attention", [Reason.FEVER]
            hh = f"{rng.randrange(1, 40)}-{rng.randrange(1, 6)}-{rng.randrange(1, 25)}0{rng.randrange(1, 4)}"
            shown = {"pid": f"P-{rng.randrange(HOUSEHOLDS):05d}", "hh": hh}
            shown_pass = template.pass_.model_copy(update=shown) if template.pass_ else None
            entry = template.model_copy(update={
                "id": str(uuid7()), "site": site, "kiosk": kiosk, "seq": seq, "ts": ts, "decision": decision,
                "reasons": reasons, "pass_": shown_pass,
            })
            batch.append((entry, entry.to_json()))
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def fill(store: Store, total: int, kiosks: int, now: datetime) -> tuple[float, str]:
    """Fill the store; the seconds it took and a household that has entries in the last 14 days."""
    began = time.monotonic()
    rng = random.Random(7)
    for batch in entries(total, kiosks, now, rng):
        store.insert_entries(batch, now)
    status = Status.model_validate({"state": "online", "camera": "ok", "thermometer": "ok",
                                    "outbox": {"backlog": 0}, "version": "bench"})
    for k in range(kiosks):
        store.record_status(f"s{k % SITES + 1}", f"k-{k:03d}", status, now - timedelta(seconds=k % 20))
    store.purge(now - timedelta(days=DAYS + 1), now=now)  # the daily purge, which refreshes the statistics
    recent = store.entries_page(now - timedelta(days=1), now, limit=1)
    household = recent[0].pass_.hh if recent and recent[0].pass_ and recent[0].pass_.hh else "1-1-101"
    return time.monotonic() - began, household


def timed(client: TestClient, path: str, requests: int) -> tuple[float, float]:
    """Median and p95 milliseconds of GET `path` (each answer must be 200)."""
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code}")
    return statistics.median(times), _p95(times)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def sign_in(client: TestClient) -> None:
    page = client.get("/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    response = client.post("/signin", data={"csrf": csrf[1], "username": "bench", "password": PASSWORD,
                                            "next": "/overview"})
    assert response.status_code == 303, response.text


def pages(store: Store, household: str, now: datetime, requests: int) -> list[tuple[str, float, float]]:
    app = create_app(store, KEY, now=lambda: now)
    local_now = now.astimezone(ZONE)
    window = {"from": (local_now - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"),
              "to": local_now.strftime("%Y-%m-%dT%H:%M")}
    paths = [("overview", "/overview"),
             ("entries, filtered", "/entries?" + urlencode({"site": "s2", "decision": "deny"})),
             ("report, today (live)", "/reports"),
             ("trace, household, 14 days", "/trace?" + urlencode({"household": household, **window}))]
    rows = []
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        sign_in(client)
        for name, path in paths:
            client.get(path)  # warm the caches, as a page in use is
            rows.append((name, *timed(client, path, requests)))
    times = []
    for _ in range(max(3, requests // 4)):  # what the reports page does every LIVE_FOR_S
        began = time.perf_counter()
        daily_report(store, local_now.date(), site=None, tz=ZONE, now=now)
        times.append((time.perf_counter() - began) * 1000)
    rows.append(("report, today, read anew (every 15 s)", statistics.median(times), _p95(times)))
    return rows


@contextmanager
def served(store: Store) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, KEY), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, name="bench-web")
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def cookie_for(address: str) -> str:
    """Sign in over HTTP; the session cookie."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/signin")
    answer = conn.getresponse()
    cookie = answer.getheader("set-cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', answer.read().decode())
    assert csrf
    body = urlencode({"csrf": csrf[1], "username": "bench", "password": PASSWORD, "next": "/alerts"})
    conn.request("POST", "/signin", body=body, headers={
        "cookie": cookie, "content-type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 303, answer.status
    return answer.getheader("set-cookie", "").split(";")[0]


def sse_latency(store: Store, streams: int, alerts: int) -> list[float]:
    """Milliseconds from each fever alert's commit to its event, on every stream."""
    arrived: dict[str, list[float]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    with served(store) as address:
        cookie = cookie_for(address)
        host, port = address.split(":")
        ready = threading.Barrier(streams + 1, timeout=30)
        conns: list[http.client.HTTPConnection] = []

        def listen() -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            with lock:
                conns.append(conn)
            conn.request("GET", "/alerts/events", headers={"cookie": cookie, "accept": "text/event-stream"})
            answer = conn.getresponse()
            ready.wait()
            while not stop.is_set():
                line = answer.readline()
                if not line:
                    return
                found = re.search(rb'data-alert="([0-9a-f-]{36})"', line)
                if found:
                    with lock:
                        arrived.setdefault(found[1].decode(), []).append(time.perf_counter())

        threads = [threading.Thread(target=listen, name=f"stream-{n}", daemon=True) for n in range(streams)]
        for thread in threads:
            thread.start()
        ready.wait()
        time.sleep(1.0)
        committed: dict[str, float] = {}
        for n in range(alerts):
            alert = Alert(kind="fever", ts=datetime.now(UTC), detail=f"body 38.{n % 10} °C", id=str(uuid7()))
            store.insert_alerts([StoredAlert("s1", "k-000", alert, datetime.now(UTC))])
            committed[str(alert.id)] = time.perf_counter()
            time.sleep(random.uniform(0.3, 1.2))
        time.sleep(2.0)
        stop.set()
        for conn in conns:  # the browsers leave: each stream ends before the server stops
            if conn.sock is not None:
                conn.sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
    return [(t - committed[key]) * 1000 for key, times in arrived.items() if key in committed for t in times]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, "
            f"load {load}; Python {platform.python_version()}")


def run_one(name: str, opener: Callable[[], Any], args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with opener() as store:
        store.add_user("bench", "admin", hash_password(PASSWORD), by="bench", at=now)
        fill_s, household = fill(store, args.entries, args.kiosks, now)
        print(f"\n{name}: {store.count_entries():,} entries from {args.kiosks} kiosks over {DAYS} days, "
              f"stored in {fill_s:.0f} s")
        print(f"| page | median ms | p95 ms | under {TARGET_MS:.0f} ms |")
        print("|---|---:|---:|---|")
        for page, median, p95 in pages(store, household, now, args.requests):
            print(f"| {page} | {median:.1f} | {p95:.1f} | {'yes' if p95 < TARGET_MS else 'NO'} |")
        latencies = sse_latency(store, args.streams, args.alerts)
        expected = args.streams * args.alerts
        print(f"\nfever → browser over SSE, {args.streams} streams, {args.alerts} alerts "
              f"({len(latencies)} of {expected} events arrived)")
        if latencies:
            print("| p50 ms | p95 ms | max ms | p95 under 1 s |")
            print("|---:|---:|---:|---|")
            p95 = _p95(latencies)
            print(f"| {statistics.median(latencies):.0f} | {p95:.0f} | {max(latencies):.0f} | "
                  f"{'yes' if p95 < 1000 else 'NO'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.office", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--kiosks", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-office-")))
        run_one("SQLite", lambda: open_store("sqlite", path=tmp / "office.sqlite"), args)
        if not args.no_pg:
            sys.path.insert(0, str(ROOT / "tests"))
            pg = importlib.import_module("pg")
            server = pg.PostgresServer(durable=True).start()
            stack.callback(server.stop)
            dsn = stack.enter_context(pg.fresh_database(server.dsn))
            run_one("PostgreSQL", lambda: open_store("postgres", dsn=dsn), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
