"""The records the store takes and gives: entries' companions, kiosk states, alerts, passes, users and the
audit log. `office.store.base` re-exports them with the `Store` contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from checkpoint.entry import Alert, Entry, Resolution


class StoreError(Exception):
    """The store could not do what was asked (database unreachable, disk full, ...); nothing was written."""


@dataclass(frozen=True)
class DeadLetter:
    """A message the collector could not accept, kept with why and exactly what arrived."""

    received_at: datetime
    topic: str
    reason: str
    payload: bytes


@dataclass(frozen=True)
class Gap:
    """Entries `first..last` (inclusive) of one kiosk that have not arrived: possibly lost."""

    site: str
    kiosk: str
    first: int
    last: int


@dataclass(frozen=True)
class SeqConflict:
    """Several entries (different ids) of one kiosk with the same `seq`: the kiosk restarted its count."""

    site: str
    kiosk: str
    seq: int
    entry_ids: tuple[str, ...]  # sorted
    detected_at: datetime  # received_at of the batch that first showed the conflict


@dataclass(frozen=True)
class KioskState:
    """A kiosk as its retained status and last will describe it."""

    site: str
    kiosk: str
    state: str  # "online" | "offline"
    since: datetime  # when it entered this state
    last_seen: datetime  # last status or heartbeat received
    backlog: int | None
    camera: str | None
    thermometer: str | None
    version: str | None


@dataclass(frozen=True)
class StoredAlert:
    """An alert as received from a kiosk."""

    site: str
    kiosk: str
    alert: Alert
    received_at: datetime


@dataclass(frozen=True)
class StoredResolution:
    """How an attention ended, as received from its kiosk."""

    site: str
    kiosk: str
    resolution: Resolution
    received_at: datetime


@dataclass(frozen=True)
class IssuedPass:
    """One row of the issued-pass registry (`kiosk-admin issue-pass` writes `passes.csv`)."""

    pid: str
    cat: str
    hh: str | None
    name_masked: str
    idh: str
    nbf: int
    exp: int
    kid: str


Role = Literal["guard", "office", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class User:
    """Someone who signs in to the office web app."""

    name: str
    role: Role
    password_hash: str  # argon2 (office/web/passwords.py); never a password
    disabled: bool
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One thing someone did: a sign-in, a user change, later an acknowledgement or an export."""

    at: datetime
    who: str
    action: str  # e.g. "user.add", "signin", "signin.failed"
    detail: str


@dataclass(frozen=True)
class AlertHandling:
    """What the office did about an alert: acknowledged it, and perhaps resolved it, each with a note."""

    alert_id: str
    acked_by: str
    acked_at: datetime
    ack_note: str
    resolved_by: str | None
    resolved_at: datetime | None
    resolve_note: str | None


@dataclass(frozen=True)
class AlertView:
    """A stored alert with its insertion number `n`, the entry it names (if stored) and its handling."""

    n: int
    stored: StoredAlert
    entry: Entry | None
    handling: AlertHandling | None

    @property
    def key(self) -> str:
        """What acknowledging and resolving name it by: its id, or "n:<n>" for an alert sent without one."""
        return self.stored.alert.id or f"n:{self.n}"


@dataclass(frozen=True)
class KioskCounts:
    """One kiosk's entries in a window, by decision, and its fever alerts."""

    site: str
    kiosk: str
    entries: int
    allows: int
    denies: int
    attentions: int
    fevers: int
