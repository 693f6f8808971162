"""The collector's store writer in a child process: ordered results, retries, stopping, and dying parents."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_helpers import publish, wait_for
from pg import fresh_database
from proc_helpers import running

from bench.ingest import collector_config, entry_payloads
from checkpoint.topics import topics
from kiosk.mqtt.local_broker import LocalBroker
from office.config import OfficeConfig, load_office_config
from office.ingest.service import Collector
from office.ingest.writer import Item, Written
from office.ingest.writer_process import WriterProcess
from office.store.base import StoreError
from office.store.opening import open_store

T = topics("s1", "gate-north")
ROOT = Path(__file__).resolve().parents[1]
BREAK_INSERTS = "CREATE TRIGGER broken BEFORE INSERT ON entries BEGIN SELECT RAISE(ABORT, 'disk full'); END"


def sqlite_config(db: Path) -> OfficeConfig:
    return OfficeConfig.model_validate({"store": {"kind": "sqlite", "path": str(db)}})


def execute(db: Path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(statement)


def items(count: int, first_seq: int = 1) -> list[Item]:
    return [(T.entry, payload) for payload in entry_payloads("s1", "gate-north", count, first_seq=first_seq)]


class Results:
    """Collects `done` results and `failed` calls, as Ingest would."""

    def __init__(self) -> None:
        self.done: list[tuple[int, Written | None]] = []
        self.failures = 0
        self.threads: set[str] = set()

    def submit(self, writer: WriterProcess, batch: list[Item], tag: int) -> None:
        writer.submit(batch, done=lambda written: self._done(tag, written), failed=self._failed)

    def _done(self, tag: int, written: Written | None) -> None:
        self.threads.add(threading.current_thread().name)
        self.done.append((tag, written))

    def _failed(self) -> None:
        self.failures += 1


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "office.sqlite"


@pytest.fixture
def writer(db: Path) -> Iterator[tuple[WriterProcess, threading.Event]]:
    stop = threading.Event()
    with WriterProcess(sqlite_config(db), stop=stop) as opened:
        yield opened, stop


def test_batches_are_committed_in_order_and_reported(writer: tuple[WriterProcess, threading.Event],
                                                     db: Path) -> None:
    process, _ = writer
    results = Results()
    first, second = items(300), items(200, first_seq=301)
    results.submit(process, first, 1)  # no waiting in between: both are in the pipe at once
    results.submit(process, [*second, (T.entry, b"{not json")], 2)
    results.submit(process, first[:10], 3)  # a redelivery
    assert process.drain(20)
    assert [tag for tag, _ in results.done] == [1, 2, 3]
    assert [(w.new, w.duplicates, w.dead_letters) for _, w in results.done if w] == [
        (300, 0, 0), (200, 0, 1), (0, 10, 0)]
    assert results.threads == {"store-results"} and results.failures == 0
    with open_store("sqlite", path=db) as store:
        assert store.count_entries() == 500 and store.gaps() == []
        assert [d.payload for d in store.dead_letters()] == [b"{not json"]


def test_a_failing_store_is_retried_in_the_child(writer: tuple[WriterProcess, threading.Event],
                                                 db: Path) -> None:
    process, _ = writer
    results = Results()
    execute(db, BREAK_INSERTS)  # a real database error on every insert, until the trigger goes
    results.submit(process, items(50), 1)
    wait_for(lambda: results.failures >= 2, 10, "two failed attempts")
    assert results.done == []
    execute(db, "DROP TRIGGER broken")
    assert process.drain(20)
    assert [(tag, w.new if w else None) for tag, w in results.done] == [(1, 50)]


def test_a_stop_during_retries_gives_the_batch_up(writer: tuple[WriterProcess, threading.Event],
                                                  db: Path) -> None:
    process, stop = writer
    results = Results()
    execute(db, BREAK_INSERTS)
    results.submit(process, items(20), 1)
    wait_for(lambda: results.failures >= 1, 10, "a failed attempt")
    stop.set()
    assert process.drain(10)
    assert results.done == [(1, None)]
    results.submit(process, items(5, first_seq=21), 2)  # still failing, and stopped: given up at once
    assert process.drain(5)
    assert results.done[-1] == (2, None)
    process.close()
    assert not process.alive
    with open_store("sqlite", path=db) as store:
        assert store.count_entries() == 0


def test_a_store_that_cannot_open_fails_the_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match=r"could not open the store: (NotADirectoryError|FileExistsError)"):
        WriterProcess(sqlite_config(tmp_path / "file" / "office.sqlite"), stop=threading.Event())


def test_the_child_exits_when_the_parent_is_killed(db: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        from office.config import OfficeConfig
        from office.ingest.writer_process import WriterProcess
        if __name__ == "__main__":
            config = OfficeConfig.model_validate({{"store": {{"kind": "sqlite", "path": {str(db)!r}}}}})
            writer = WriterProcess(config, stop=threading.Event())
            print(writer.pid, flush=True)
            time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert running(child)
    finally:
        parent.kill()
        parent.wait(10)
    wait_for(lambda: not running(child), 10, "the orphaned writer to exit")


def test_the_collector_stops_when_its_writer_dies(tmp_path: Path) -> None:
    with LocalBroker() as broker:
        config = load_office_config(collector_config(tmp_path, broker))
        assert config.ingest.writer == "process"
        collector = Collector(config)
        status: list[int] = []
        thread = threading.Thread(target=lambda: status.append(collector.run()), name="collector-under-test")
        thread.start()
        try:
            wait_for(lambda: collector.ingest is not None and collector.ingest.connected, 10, "connected")
            publish(broker, T.entry, items(1)[0][1])
            ingest = collector.ingest
            assert ingest is not None
            wait_for(lambda: ingest.stats().entries == 1, 10, "the first entry")
            writer = ingest._writer
            assert isinstance(writer, WriterProcess) and writer.pid is not None
            os.kill(writer.pid, signal.SIGKILL)
            thread.join(15)
        finally:
            collector.stop.set()
            thread.join(15)
        assert status == [1]



def test_the_collector_will_not_run_without_its_store(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("not a directory")
    config = OfficeConfig.model_validate({
        "store": {"kind": "sqlite", "path": str(tmp_path / "file" / "office.sqlite")},
        "report": {"out_dir": str(tmp_path / "reports")},
    })
    assert Collector(config).run() == 1
    expected = f"cannot open the sqlite store: FileExistsError: [Errno 17] File exists: '{tmp_path / 'file'}'"
    assert expected in caplog.text


def test_the_collector_stores_into_postgresql_from_its_writer_process(tmp_path: Path,
                                                                       postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn) as dsn, LocalBroker() as broker:
        config = load_office_config(collector_config(tmp_path, broker, store="postgres", dsn=dsn))
        assert (config.store.kind, config.ingest.writer) == ("postgres", "process")
        collector = Collector(config)
        thread = threading.Thread(target=collector.run, name="collector-under-test")
        thread.start()
        try:
            wait_for(lambda: collector.ingest is not None and collector.ingest.connected, 10, "connected")
            for _, payload in items(30):
                publish(broker, T.entry, payload)
            publish(broker, T.entry, b"{not json")
            ingest = collector.ingest
            assert ingest is not None
            wait_for(lambda: ingest.stats().received == 31, 10, "every message")
        finally:
            collector.stop.set()
            thread.join(15)
        with open_store("postgres", dsn=dsn) as store:
            assert store.count_entries() == 30 and store.gaps() == []
            assert [d.payload for d in store.dead_letters()] == [b"{not json"]
