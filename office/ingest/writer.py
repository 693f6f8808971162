"""The store side of ingest: validate a batch and commit it, in the ingest thread or in a child process.

`BatchWriter` classifies a batch and writes it in one transaction, retrying a failing store with backoff
until it succeeds or the service stops; the caller acknowledges nothing before it reports the result.
It is the `Writer` of `ingest.writer = "thread"`; `WriterProcess` (office/ingest/writer_process.py),
the default, runs one in a child process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ValidationError

from checkpoint.entry import Alert, Entry, Resolution, Status, utc_now
from checkpoint.topics import parse_topic
from office.config import OfficeConfig
from office.store.base import DeadLetter, Store, StoredAlert, StoredResolution
from office.store.opening import open_store

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0
GAPS_EVERY_S = 30.0
Item = tuple[str, bytes]  # (topic, payload) of one received message


@dataclass
class Batch:
    """Validated messages of one batch, by what the store does with them."""

    entries: list[tuple[Entry, bytes]] = field(default_factory=list)
    statuses: list[tuple[str, str, Status]] = field(default_factory=list)
    alerts: list[StoredAlert] = field(default_factory=list)
    resolutions: list[StoredResolution] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    in_batch_duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Written:
    """What one committed batch held, for the counters."""

    new: int = 0  # entries not stored before
    duplicates: int = 0  # entries stored before, or twice in the batch
    statuses: int = 0
    alerts: int = 0
    resolutions: int = 0
    dead_letters: int = 0
    open_gaps: int | None = None  # counted now and then; None when not counted this time


class Waiter(Protocol):
    """What a retry waits on: `wait(s)` is True once the service stops (a `threading.Event`)."""

    def wait(self, timeout: float | None = None) -> bool: ...


Done = Callable[[Written | None], None]  # a batch's result: None if the service stopped before the commit


class Writer(Protocol):
    """Validates and commits batches in the order submitted, and reports each one's result."""

    def submit(self, items: Sequence[Item], *, done: Done, failed: Callable[[], None]) -> None:
        """Commit `items`, retrying while the store fails (`failed()` each time), then `done(result)`."""

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted batch is done; False if some are still pending."""

    @property
    def alive(self) -> bool:
        """Whether batches can still be committed."""

    @property
    def progress(self) -> float:
        """The monotonic time the writer last made progress (now, when nothing is pending)."""


_MODELS: dict[str, type[BaseModel]] = {"entry": Entry, "status": Status, "alert": Alert,
                                       "resolution": Resolution}
_MALFORMED = ("json_invalid", "json_type", "model_type", "model_attributes_type")


def _why(exc: ValidationError) -> tuple[str, str]:
    """(code, detail) for a payload that failed validation."""
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] in _MALFORMED:
        return "malformed", str(first["msg"])[:200]
    if first is not None and tuple(first["loc"]) == ("schema",) and first["type"] == "literal_error":
        return "wrong_schema", f"schema {first.get('input')!r}"[:200]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in errors[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid", detail[:400] + more


def classify(items: Sequence[Item], *, max_payload: int, received_at: datetime) -> Batch:
    """Validate each (topic, payload); what is no valid entry, status, alert or resolution is dead."""
    batch = Batch()
    seen: set[str] = set()
    for topic, payload in items:
        try:
            _classify_one(topic, payload, batch, seen, max_payload=max_payload, received_at=received_at)
        except Exception as exc:  # a bug here must not stop ingest; the message is kept as a dead letter
            log.exception("cannot classify a message on %r", topic)
            batch.dead.append(DeadLetter(received_at, topic, f"internal: {type(exc).__name__}",
                                         payload[:max_payload]))
    return batch


def _classify_one(topic: str, payload: bytes, batch: Batch, seen: set[str], *, max_payload: int,
                  received_at: datetime) -> None:
    def dead(reason: str) -> None:
        batch.dead.append(DeadLetter(received_at, topic, reason, payload[:max_payload]))

    where = parse_topic(topic)
    if where is None:
        dead("unknown_topic: not checkpoint/v1/{site}/{kiosk}/{entry|status|alert|resolution}")
        return
    site, kiosk, kind = where
    size = len(payload)
    if kind == "status" and size == 0:
        return  # a retained status being cleared: nothing to record
    if size > max_payload:
        dead(f"oversized {kind}: {size} bytes > {max_payload} (the first {max_payload} kept)")
        return
    try:
        parsed = _MODELS[kind].model_validate_json(payload)
    except ValidationError as exc:
        code, detail = _why(exc)
        dead(f"{code} {kind}: {detail}")
        return
    if isinstance(parsed, Entry):
        if (parsed.site, parsed.kiosk) != (site, kiosk):
            dead(f"topic_mismatch entry: topic {site}/{kiosk}, payload {parsed.site}/{parsed.kiosk}")
        elif parsed.id in seen:
            batch.in_batch_duplicates += 1
        else:
            seen.add(parsed.id)
            batch.entries.append((parsed, payload))
    elif isinstance(parsed, Status):
        batch.statuses.append((site, kiosk, parsed))
    elif isinstance(parsed, Alert):
        batch.alerts.append(StoredAlert(site, kiosk, parsed, received_at))
    elif isinstance(parsed, Resolution):
        batch.resolutions.append(StoredResolution(site, kiosk, parsed, received_at))


class BatchWriter:
    """Validates and commits batches into `store` (which the caller owns), in the calling thread."""

    def __init__(self, store: Store, *, max_payload: int, stop: Waiter) -> None:
        self._store = store
        self._max_payload = max_payload
        self._stop = stop
        self._gaps_at = -GAPS_EVERY_S

    def submit(self, items: Sequence[Item], *, done: Done, failed: Callable[[], None]) -> None:
        """Commit now, in this thread, then call `done`."""
        done(self.write(items, failed=failed))

    def drain(self, timeout_s: float) -> bool:
        """Nothing is ever pending: `submit` returns when it is done."""
        return True

    @property
    def alive(self) -> bool:
        """Always: a failing store is retried, not given up."""
        return True

    @property
    def progress(self) -> float:
        """Now: the caller's thread is what waits for a commit."""
        return time.monotonic()

    def write(self, items: Sequence[Item], *, failed: Callable[[], None]) -> Written | None:
        """Validate and commit a batch, retrying with backoff (`failed()` each time); None if stopped."""
        if not items:  # commits nothing: only counts the open seq gaps
            return Written(open_gaps=self._count_gaps())
        received_at = utc_now()
        batch = classify(items, max_payload=self._max_payload, received_at=received_at)
        delay, attempt = BACKOFF_MIN_S, 0
        while True:
            attempt += 1
            try:
                new = self._write(batch, received_at)
                break
            except Exception as exc:
                log.error("UNHEALTHY: store write failed (attempt %d): %s: %s; nothing acknowledged, "
                          "retrying in %.1f s", attempt, type(exc).__name__, exc, delay)
                failed()
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, BACKOFF_MAX_S)
        if attempt > 1:
            log.warning("store writes work again after %d attempts", attempt)
        if batch.dead:
            first = batch.dead[0]
            log.warning("%d dead letter(s); the first on %s: %s", len(batch.dead), first.topic, first.reason)
        due = time.monotonic() - self._gaps_at > GAPS_EVERY_S
        return Written(new=new, duplicates=len(batch.entries) - new + batch.in_batch_duplicates,
                       statuses=len(batch.statuses), alerts=len(batch.alerts),
                       resolutions=len(batch.resolutions), dead_letters=len(batch.dead),
                       open_gaps=self._count_gaps() if due else None)

    def _write(self, batch: Batch, received_at: datetime) -> int:
        # Each call is one transaction. Entries, alerts and statuses are idempotent, so a retry after a
        # partial failure repeats them harmlessly; dead letters go last, as a retry would repeat them.
        new = self._store.insert_entries(batch.entries, received_at) if batch.entries else 0
        if batch.alerts:
            self._store.insert_alerts(batch.alerts)
        if batch.resolutions:
            self._store.insert_resolutions(batch.resolutions)
        for site, kiosk, status in batch.statuses:
            self._store.record_status(site, kiosk, status, received_at)
        if batch.dead:
            self._store.insert_dead_letters(batch.dead)
        return new

    def _count_gaps(self) -> int | None:
        self._gaps_at = time.monotonic()
        try:
            return len(self._store.gaps())
        except Exception as exc:
            log.warning("cannot count seq gaps: %s", exc)
            return None


def open_configured_store(config: OfficeConfig) -> Store:
    """The configured store."""
    cfg = config.store
    if cfg.kind == "sqlite":
        cfg.path.parent.mkdir(parents=True, exist_ok=True)
        return open_store("sqlite", path=cfg.path)
    return open_store("postgres", dsn=cfg.dsn())


