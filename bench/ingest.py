"""Ingest benchmark: emulated kiosks publish entries; how fast the collector stores them vs mosquitto_sub.

Run: .venv/bin/python -m bench.ingest [--entries 200000] [--kiosks 10] [--pg-dsn DSN | --no-pg]

Kiosks are `mosquitto_pub -l -q 1` processes fed pre-serialised entries, one per line, so the publishers
cost the Python side nothing. Two modes: `live` starts the consumer, then the kiosks publish as fast as the
broker takes them; `backlog` queues everything in the consumer's persistent session while it is down,
then times the drain. Raw is `mosquitto_sub -q 1` on the same shared subscription, output discarded.
The helpers (payloads, a paho kiosk fleet, broker and collector configs) serve tests/ as well.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from uuid6 import uuid7

from checkpoint.entry import ENTRY_SCHEMA, Entry, format_ts
from checkpoint.topics import shared_subscription, topics
from kiosk.mqtt.local_broker import LocalBroker
from office.store.opening import open_store

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = ROOT / "config" / "mosquitto" / "mosquitto.conf"
SET_LOCALLY = {"listener", "allow_anonymous", "password_file", "acl_file", "persistence",
               "persistence_location", "log_dest", "log_type", "user", "certfile", "keyfile", "cafile",
               "connection_messages", "use_username_as_clientid"}


def entry_payloads(site: str, kiosk: str, count: int, *, first_seq: int = 1, start: datetime | None = None,
                   validate: bool = False) -> list[bytes]:
    """`count` entries of one kiosk, seq first_seq.., one per second from `start`, as compact JSON."""
    start = start or datetime.now(UTC) - timedelta(seconds=count)
    out = []
    for seq in range(first_seq, first_seq + count):
        data = {"schema": ENTRY_SCHEMA, "id": str(uuid7()), "site": site, "kiosk": kiosk, "seq": seq,
                "ts": format_ts(start + timedelta(seconds=seq - first_seq)), "direction": "in",
                "decision": "allow", "reasons": [], "override": None,
                "temperature": {"skin_c": 35.1, "body_c": 36.6, "ambient_c": 5.2, "samples": 5},
                "health": {"scheme": "token", "status": "green"},
                "pass": {"pid": f"P-{seq % 5000:05d}", "cat": "green", "hh": f"9-{seq % 40}-301"},
                "person": None, "timing_ms": {"decode": 6.1, "decide": 0.3, "session": 1840.0}}
        payload = json.dumps(data, separators=(",", ":")).encode()
        if validate:
            Entry.model_validate_json(payload)
        out.append(payload)
    return out


def fleet_streams(kiosks: int, per_kiosk: int, *, site: str = "s1", validate: bool = False
                  ) -> dict[str, list[bytes]]:
    """{entry topic: payloads} for kiosks k00, k01, ..."""
    return {topics(site, f"k{i:02d}").entry: entry_payloads(site, f"k{i:02d}", per_kiosk, validate=validate)
            for i in range(kiosks)}


class Fleet:
    """Emulated kiosks in Python: one paho client each, publishing at QoS 1 and counting PUBACKs.

    With `retry_unrouted`, a PUBACK "No matching subscribers" (16) counts as not delivered and the entry
    is published again: mosquitto 2.0 does not restore shared subscriptions after a restart, and until a
    collector subscribes again it acknowledges entries that it then drops.
    """

    def __init__(self, broker: LocalBroker, streams: Mapping[str, Sequence[bytes]], *, window: int = 2000,
                 max_inflight: int = 100, retry_unrouted: bool = False) -> None:
        self.streams = streams
        self.total = sum(len(p) for p in streams.values())
        self.window = window
        self.retry_unrouted = retry_unrouted
        self.acked = 0
        self.refused = 0
        self.unrouted = 0
        self._acks: queue.SimpleQueue[tuple[int, int, int]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.clients: list[mqtt.Client] = []
        for n, _topic in enumerate(streams):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"kiosk-{n}", protocol=mqtt.MQTTv5,
                                 userdata=n)
            client.max_inflight_messages_set(max_inflight)
            client.reconnect_delay_set(1, 1)
            client.on_publish = self._on_publish
            client.connect(broker.host, broker.port)
            client.loop_start()
            self.clients.append(client)
        self._thread = threading.Thread(target=self._publish, name="fleet")

    def _on_publish(self, client: mqtt.Client, userdata: int, mid: int, reason: ReasonCode,
                    properties: object) -> None:
        self._acks.put((userdata, mid, reason.value))

    def _publish(self) -> None:
        streams = list(self.streams.items())
        longest = max((len(p) for _, p in streams), default=0)
        pending = [(n, topic, payloads[i]) for i in range(longest)
                   for n, (topic, payloads) in enumerate(streams) if i < len(payloads)]
        pending.reverse()  # pop() from the end: each kiosk's entries in order, the kiosks side by side
        retry: list[tuple[int, str, bytes]] = []
        sent: list[dict[int, tuple[str, bytes]]] = [{} for _ in self.clients]
        outstanding = 0
        while self.acked < self.total and not self._stop.is_set():
            while True:
                try:
                    n, mid, code = self._acks.get_nowait()
                except queue.Empty:
                    break
                topic, payload = sent[n].pop(mid)
                outstanding -= 1
                if code == 16 and self.retry_unrouted:
                    self.unrouted += 1
                    retry.append((n, topic, payload))
                else:
                    self.acked += 1
                    self.refused += code >= 0x80
            budget = self.window * len(self.clients) - outstanding
            if budget <= 0 or not (pending or retry):
                time.sleep(0.002)
                continue
            for _ in range(min(budget, 500)):
                if retry:
                    n, topic, payload = retry.pop(0)
                elif pending:
                    n, topic, payload = pending.pop()
                else:
                    break
                info = self.clients[n].publish(topic, payload, qos=1)
                sent[n][info.mid] = (topic, payload)
                outstanding += 1

    def start(self) -> Fleet:
        """Start publishing in the background."""
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> float:
        """Wait until every message is acknowledged (and routed, with retry_unrouted); the seconds taken."""
        started = time.monotonic()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"fleet: {self.acked}/{self.total} acknowledged after {timeout_s:g} s")
        return time.monotonic() - started

    def close(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def shipped_broker_config() -> str:
    """The shipped mosquitto.conf without what LocalBroker sets itself (listener, paths, auth, logging)."""
    kept = []
    for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
        key = line.split("#", 1)[0].split()
        if key and key[0] not in SET_LOCALLY:
            kept.append(line)
    return "\n".join(kept)


def collector_config(directory: Path, broker: LocalBroker, *, client_id: str = "collector-1",
                     store: str = "sqlite", db: Path | None = None, dsn: str | None = None,
                     batch_size: int = 500, batch_ms: int = 50, shared: bool = True, writer: str = "process",
                     extra: str = "") -> Path:
    """An ingest-only office config for a local broker; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    if store == "postgres":
        (directory / "dsn").write_text(dsn or "", encoding="utf-8")
        store_lines = 'kind = "postgres"\ndsn_file = "dsn"'
    else:
        store_lines = f'kind = "sqlite"\npath = "{db or directory / "office.sqlite"}"'
    text = (f'[broker]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "{client_id}"\n'
            f"reconnect_min_s = 1\nreconnect_max_s = 1\n\n[store]\n{store_lines}\n\n"
            f"[ingest]\nbatch_size = {batch_size}\nbatch_ms = {batch_ms}\nshared = {str(shared).lower()}\n"
            f'writer = "{writer}"\n\n'
            "[web]\nenabled = false  # several collectors on one host: ingest only\n\n"
            f'[report]\nout_dir = "{directory / "reports"}"\npublish = false\n{extra}')
    path = directory / f"{client_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def collector_command() -> list[str]:
    """`kiosk-office run` (the console script beside this interpreter)."""
    return [str(Path(sys.executable).parent / "kiosk-office"), "run"]


def start_collector(command: list[str], config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a collector process logging to `log`."""
    with log.open("ab") as err:
        return subprocess.Popen([*command, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=err,
                                cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_log(log: Path, text: str, timeout_s: float = 20.0, after: int = 0) -> None:
    """Wait until `text` appears in the log beyond byte offset `after`."""
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace")[after:]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not logged within {timeout_s:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM and wait; SIGKILL if it does not stop."""
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


# -- the benchmark ------------------------------------------------------------------------------------


def _publish_fleet(broker: LocalBroker, streams: Mapping[str, Sequence[bytes]], tmp: Path) -> float:
    """mosquitto_pub -l per kiosk; returns when every one exited (all PUBACKs in)."""
    procs = []
    started = time.monotonic()
    for n, (topic, payloads) in enumerate(streams.items()):
        lines = tmp / f"kiosk-{n}.jsonl"
        lines.write_bytes(b"\n".join(payloads) + b"\n")
        procs.append(subprocess.Popen(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "5",
                                       "-q", "1", "-M", "100", "-i", f"bench-kiosk-{n}", "-t", topic, "-l"],
                                      stdin=lines.open("rb"), stdout=subprocess.DEVNULL))
    for proc in procs:
        if proc.wait(600) != 0:
            raise RuntimeError("mosquitto_pub failed")
    return time.monotonic() - started


def _sub_command(broker: LocalBroker, count: int) -> list[str]:
    return ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "5", "-q", "1", "-c",
            "-i", "bench-sub", "-x", "3600", "-t", shared_subscription("entry"), "-C", str(count)]


def bench_raw(broker: LocalBroker, *, streams: Mapping[str, Sequence[bytes]], tmp: Path, mode: str) -> float:
    """Seconds mosquitto_sub takes to receive the stream (live) or to drain it (backlog)."""
    total = sum(len(p) for p in streams.values())
    if mode == "backlog":
        subprocess.run([*_sub_command(broker, 1)[:-2], "-W", "1"], capture_output=True, check=False)
        _publish_fleet(broker, streams, tmp)
        started = time.monotonic()
        subprocess.run(_sub_command(broker, total), stdout=subprocess.DEVNULL, check=True, timeout=600)
        return time.monotonic() - started
    sub = subprocess.Popen(_sub_command(broker, total), stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    started = time.monotonic()
    _publish_fleet(broker, streams, tmp)
    sub.wait(600)
    return time.monotonic() - started


def bench_collector(broker: LocalBroker, *, streams: Mapping[str, Sequence[bytes]], tmp: Path, mode: str,
                    store: str, dsn: str | None = None, batch_size: int = 500, collectors: int = 1,
                    writer: str = "process") -> float:
    """Seconds until the collectors have stored the whole stream (live) or drained the backlog."""
    db = tmp / "office.sqlite"
    configs = [collector_config(tmp / f"c{n}", broker, client_id=f"bench-{n}", store=store, dsn=dsn, db=db,
                                batch_size=batch_size, writer=writer) for n in range(collectors)]
    command = collector_command()
    reader = open_store("sqlite", path=db) if store == "sqlite" else open_store("postgres", dsn=dsn)
    kiosks = threading.Thread(target=_publish_fleet, args=(broker, streams, tmp), name="kiosks")
    procs: list[subprocess.Popen[bytes]] = []

    def start_all() -> None:
        logs = [c.with_suffix(".log") for c in configs]
        offsets = [log.stat().st_size if log.exists() else 0 for log in logs]
        procs[:] = [start_collector(command, c, c.with_suffix(".log")) for c in configs]
        for config, offset in zip(configs, offsets, strict=True):
            wait_log(config.with_suffix(".log"), "connected to", after=offset)

    try:
        goal = reader.count_entries() + sum(len(p) for p in streams.values())  # a --pg-dsn may hold some
        start_all()
        if mode == "backlog":
            for proc in procs:
                stop_process(proc)
            _publish_fleet(broker, streams, tmp)
            start_all()
            started = time.monotonic()
        else:
            started = time.monotonic()
            kiosks.start()
        while reader.count_entries() < goal:
            if time.monotonic() - started > 300 or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"collector stalled at {reader.count_entries()}/{goal}")
            time.sleep(0.1)
        return time.monotonic() - started
    finally:
        for proc in procs:
            stop_process(proc)
        if kiosks.is_alive():
            kiosks.join()
        reader.close()


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, "
            f"load {load}; Python {platform.python_version()}, paho-mqtt {version('paho-mqtt')}, "
            f"{subprocess.run(['mosquitto', '-h'], capture_output=True, text=True).stdout.splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--kiosks", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--collectors", default="1,2", help="collector processes to try, e.g. 1,2")
    parser.add_argument("--writers", default="process,thread", help="ingest.writer values to try")
    parser.add_argument("--modes", default="live,backlog")
    parser.add_argument("--pg-dsn", help="an existing PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        print("needs mosquitto_pub and mosquitto_sub (mosquitto-clients)", file=sys.stderr)
        return 2
    per_kiosk = args.entries // args.kiosks
    total = per_kiosk * args.kiosks
    pg_note, pg_server, dsn = "", None, args.pg_dsn
    if not args.no_pg and dsn is None:
        sys.path.insert(0, str(ROOT / "tests"))
        try:
            pg_server = importlib.import_module("pg").PostgresServer(durable=True).start()
            dsn = pg_server.dsn
        except Exception as exc:
            pg_note = f"no PostgreSQL server: {exc}"
    print(f"Machine: {_machine()}")
    print(f"{total} entries from {args.kiosks} kiosks, batch_size {args.batch_size}, "
          "shipped mosquitto tuning\n")
    print("| consumer | mode | entries | seconds | entries/s | × mosquitto_sub |")
    print("|---|---|--:|--:|--:|--:|")
    runs = 0
    single: list[tuple[str, str, float, float]] = []  # one collector: (store, mode, entries/s, × raw)
    try:
        for mode in args.modes.split(","):
            raw = _run_once(partial(bench_raw, streams=fleet_streams(args.kiosks, per_kiosk), mode=mode))
            print(f"| mosquitto_sub -q 1 | {mode} | {total} | {raw:.2f} | {total / raw:,.0f} | 1.00 |",
                  flush=True)
            for store in ("sqlite", "postgres"):
                name = "SQLite" if store == "sqlite" else "PostgreSQL"
                if store == "postgres" and dsn is None:
                    print(f"| collector, {name} | {mode} | – | – | – | – ({pg_note or 'skipped'}) |")
                    continue
                for writer in args.writers.split(","):
                    for count in (int(n) for n in args.collectors.split(",")):
                        runs += 1  # a new site each run: no seq conflicts in a reused --pg-dsn database
                        streams = fleet_streams(args.kiosks, per_kiosk, site=f"bench{runs}")
                        with _database(pg_server, dsn) as run_dsn:
                            run = partial(bench_collector, streams=streams, mode=mode, store=store,
                                          dsn=run_dsn, batch_size=args.batch_size, collectors=count,
                                          writer=writer)
                            took = _run_once(run)
                        label = f"{count} collector{'s' if count > 1 else ''}, {name}, writer {writer}"
                        print(f"| {label} | {mode} | {total} | {took:.2f} | {total / took:,.0f} | "
                              f"{raw / took:.2f} |", flush=True)
                        if count == 1 and writer == "process":
                            single.append((store, mode, total / took, raw / took))
    finally:
        if pg_server is not None:
            pg_server.stop()
    _print_targets(single)
    return 0


def _print_targets(single: Sequence[tuple[str, str, float, float]]) -> None:
    """The two ingest targets (docs/benchmarks.md), judged on one collector with the default writer."""
    if not single:
        return
    rates = {mode: rate for store, mode, rate, _ in single if store == "sqlite"}
    if rates:
        met = min(rates.values()) > 10_000
        shown = ", ".join(f"{mode} {rate:,.0f}/s" for mode, rate in rates.items())
        print(f"\nTarget > 10,000 entries/s into SQLite: {'met' if met else 'missed'} ({shown})")
    ratios = ", ".join(f"{store} {mode} {ratio:.2f}" for store, mode, _, ratio in single)
    met = min(ratio for *_, ratio in single) >= 0.5
    print(f"Target >= 0.5 x mosquitto_sub: {'met' if met else 'missed'} ({ratios})")


@contextlib.contextmanager
def _database(server: Any, dsn: str | None) -> Iterator[str | None]:
    """A new empty database on our throwaway server; a given --pg-dsn as it is."""
    if server is None or dsn is None:
        yield dsn
        return
    with importlib.import_module("pg").fresh_database(dsn) as fresh:
        yield fresh


def _run_once(fn: Callable[..., float]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        persist = Path(tmp) / "broker"
        persist.mkdir()
        with LocalBroker(persistence_dir=persist, extra_config=shipped_broker_config()) as broker:
            return fn(broker, tmp=Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
