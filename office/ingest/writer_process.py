"""`WriterProcess`: the collector's `BatchWriter` in a child process, so that storing uses a second core.

Validating and storing are about half of the CPU time per entry, and paho's network thread the other
half; in one process they take turns on one GIL. Here the parent submits batches down a pipe without
waiting, the child (`store-writer`) commits them in order on its own store connection and answers each
with its result, and the parent's `store-results` thread hands each result to its `done` callback, which
acknowledges the batch. Receive Maximum bounds how many batches are in flight.

Stopping. The child ignores SIGTERM and SIGINT: it commits what it was sent and exits when the pipe
closes, which is also what happens when the parent is killed. A batch it committed but whose result the
parent never acknowledged comes again from the broker and is stored once. While the store fails the child
retries with backoff; when the service stops during that, the parent tells it to give up, and what it
gave up on is not acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection
from types import TracebackType

from checkpoint.systemd import setup_logging
from office.config import OfficeConfig
from office.ingest.writer import BatchWriter, Done, Item, Waiter, Written, open_configured_store
from office.store.base import StoreError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
_STOP = "stop"  # parent to child: give up retrying (the service stops)
_CLOSE = None  # parent to child: nothing more will come


class WriterProcess:
    """A `BatchWriter` in a child process with its own connection to the configured store."""

    def __init__(self, config: OfficeConfig, *, stop: Waiter) -> None:
        self._stop = stop
        self._lock = threading.Condition()  # pending, sending, progress
        self._pending: dict[int, tuple[Done, Callable[[], None]]] = {}
        self._next = 0
        self._progress = time.monotonic()
        context = multiprocessing.get_context("spawn")  # no fork: the parent has threads and connections
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_child_main, name="store-writer", daemon=True,
                                     args=(config, child, logging.getLogger().getEffectiveLevel()))
        self._proc.start()
        child.close()
        self._results = threading.Thread(target=self._read_results, name="store-results")
        try:
            if not self._conn.poll(READY_TIMEOUT_S):
                raise StoreError(f"the store writer process did not start within {READY_TIMEOUT_S:g} s")
            kind, detail = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.close()
            raise StoreError(f"the store writer process exited (code {self._proc.exitcode})") from exc
        except BaseException:
            self.close()
            raise
        if kind != "ready":
            self.close()
            raise StoreError(f"the store writer process could not open the store: {detail}")
        self._results.start()

    def submit(self, items: Sequence[Item], *, done: Done, failed: Callable[[], None]) -> None:
        """Send the batch to the child; `done` is called from the `store-results` thread."""
        with self._lock:
            if not self._pending:
                self._progress = time.monotonic()
            number, self._next = self._next, self._next + 1
            self._pending[number] = (done, failed)
            try:
                self._conn.send((number, list(items)))
            except OSError as exc:
                del self._pending[number]
                raise StoreError(f"the store writer process went away: {exc}") from exc

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted batch has its result, or the child is gone."""
        with self._lock:
            self._lock.wait_for(lambda: not self._pending or not self.alive, timeout_s)
            return not self._pending

    @property
    def alive(self) -> bool:
        """Whether the child and the thread reading its results run."""
        return self._proc.is_alive() and self._results.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._proc.pid

    @property
    def progress(self) -> float:
        """The last result or failed attempt from the child; now, when nothing is pending."""
        with self._lock:
            return self._progress if self._pending else time.monotonic()

    def _read_results(self) -> None:
        failing = stop_sent = False
        try:
            while True:
                if not self._conn.poll(0.5):
                    if failing and not stop_sent and self._stop.wait(0):
                        self._send(_STOP)
                        stop_sent = True
                    continue
                kind, number, written = self._conn.recv()
                with self._lock:
                    self._progress = time.monotonic()
                    callbacks = self._pending.pop(number) if kind == "done" else self._pending[number]
                if kind == "failed":
                    failing = True
                    callbacks[1]()
                    continue
                failing = False
                callbacks[0](written if isinstance(written, Written) else None)
                with self._lock:
                    self._lock.notify_all()
        except (EOFError, OSError):
            pass  # the child exited: after a close, or it died
        with self._lock:
            if self._pending:
                log.error("the store writer process exited (code %s) with %d batch(es) not committed; they "
                          "were not acknowledged and come again", self._proc.exitcode, len(self._pending))
            self._lock.notify_all()

    def _send(self, message: object) -> None:
        with self._lock, contextlib.suppress(OSError):  # if the child is gone, the results thread notices
            self._conn.send(message)

    def close(self, timeout_s: float = 10.0) -> None:
        """Tell the child that nothing more comes; wait for it and for its last results. Idempotent."""
        if not self._conn.closed:
            self._send(_CLOSE)
        if self._proc.pid is not None:
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                log.warning("the store writer process did not stop within %g s; killing it", timeout_s)
                self._proc.kill()
                self._proc.join(timeout_s)
        if self._results.ident is not None:
            self._results.join(timeout_s)
        self._conn.close()

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _child_main(config: OfficeConfig, conn: Connection, level: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent decides when to stop: it closes the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    setup_logging(level)
    try:
        store = open_configured_store(config)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    stop = threading.Event()  # set by a stop from the parent, or when the parent is gone
    batches: queue.SimpleQueue[tuple[int, list[Item]] | None] = queue.SimpleQueue()
    reader = threading.Thread(target=_read_batches, args=(conn, batches, stop), name="batches", daemon=True)
    with store:
        writer = BatchWriter(store, max_payload=config.ingest.max_payload_bytes, stop=stop)
        conn.send(("ready", None))
        reader.start()
        try:
            while (batch := batches.get()) is not None:
                number, items = batch
                written = writer.write(items, failed=partial(conn.send, ("failed", number, None)))
                conn.send(("done", number, written))
        except OSError:
            return  # the parent is gone: nothing more to answer


def _read_batches(conn: Connection, batches: queue.SimpleQueue[tuple[int, list[Item]] | None],
                  stop: threading.Event) -> None:
    try:
        while (message := conn.recv()) is not _CLOSE:
            if message == _STOP:
                stop.set()
            else:
                batches.put(message)
    except (EOFError, OSError):
        stop.set()  # the parent is gone: no one would acknowledge what a retry commits
    batches.put(None)
