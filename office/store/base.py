"""The collector's storage interface: one contract, implemented for SQLite and PostgreSQL.

Every method is one transaction. Times are aware UTC datetimes (a naive one is a ValueError). Entries are
validated `checkpoint.entry.Entry` models; the raw payload is kept beside the columns so nothing the kiosk
said is ever lost. A storage failure raises `StoreError` and leaves nothing half-written.

Seq bookkeeping (per kiosk): the store keeps the highest `seq` seen and the open gaps, which are exactly
the seqs `1..highest` that never arrived (a kiosk first heard of at seq n has the gap 1..n-1: those entries
never reached this store). The result does not depend on arrival order, so several collectors may share a
PostgreSQL store. `id` alone is the idempotency key: an entry whose (site, kiosk, seq) is already held by
another id (a kiosk whose outbox was reset and restarted its seq) is stored too and listed by
`seq_conflicts`; it opens no gap while its seq is below the highest seen.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Self

from checkpoint.entry import Entry, Status
from office.store.passes import PassRecord, Revocation, RevocationState
from office.store.records import (
    ROLES,
    AlertHandling,
    AlertView,
    AuditRecord,
    DeadLetter,
    Gap,
    IssuedPass,
    KioskCounts,
    KioskState,
    Role,
    SeqConflict,
    StoredAlert,
    StoredResolution,
    StoreError,
    User,
)
from office.store.reports import KeptReport, KeptReportFiles
from office.store.seqs import SeqPlan, plan_seqs

__all__ = [
    "ROLES",
    "AlertHandling",
    "AlertView",
    "AuditRecord",
    "DeadLetter",
    "Gap",
    "IssuedPass",
    "KioskCounts",
    "KioskState",
    "PassRecord",
    "Revocation",
    "RevocationState",
    "Role",
    "SeqConflict",
    "SeqPlan",
    "Store",
    "StoreError",
    "StoredAlert",
    "StoredResolution",
    "User",
    "plan_seqs",
]


class Store(ABC):
    """Where the collector keeps entries, dead letters, kiosk states, alerts, the registry and its audit."""

    @abstractmethod
    def insert_entries(self, entries: Sequence[tuple[Entry, bytes]], received_at: datetime) -> int:
        """Store (entry, raw payload) pairs; duplicates by `id` are ignored. Returns how many were new.

        Also advances each kiosk's highest `seq` and records or fills gaps, in the same transaction.
        """

    @abstractmethod
    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep messages that failed validation."""

    @abstractmethod
    def record_status(self, site: str, kiosk: str, status: Status, received_at: datetime) -> None:
        """Apply a status (or a last will `{"state":"offline"}`) and keep online/offline transitions.

        Transition times are `received_at` (the collector's clock); a status received before the last one
        applied is stale and ignored; a field the status leaves out (the will) keeps its last known value.
        """

    @abstractmethod
    def insert_alerts(self, alerts: Sequence[StoredAlert]) -> int:
        """Store alerts (duplicates by alert `id` ignored); returns how many were new."""

    @abstractmethod
    def insert_resolutions(self, resolutions: Sequence[StoredResolution]) -> int:
        """Store resolutions (one per attention entry; a second one is ignored); returns how many were new."""

    @abstractmethod
    def resolutions_between(self, start: datetime, end: datetime, *,
                            site: str | None = None) -> list[StoredResolution]:
        """Resolutions with `start <= ts < end`, ordered by ts."""

    @abstractmethod
    def gaps(self, *, site: str | None = None) -> list[Gap]:
        """The open seq gaps, by site, kiosk and first missing seq."""

    def seq_conflicts(self, *, site: str | None = None) -> list[SeqConflict]:
        """Seqs held by more than one entry id, by site, kiosk and seq."""
        raise NotImplementedError(f"{type(self).__name__} does not track seq conflicts")

    # -- queries for reports, traces and the registry ------------------------------------------------

    @abstractmethod
    def entries_between(
        self,
        start: datetime,
        end: datetime,
        *,
        site: str | None = None,
        kiosk: str | None = None,
        person_ref: str | None = None,
        pid: str | None = None,
        hh: str | None = None,
    ) -> list[Entry]:
        """Entries with `start <= ts < end` matching every filter, ordered by ts, site, kiosk and seq."""

    @abstractmethod
    def entries_page(
        self,
        start: datetime,
        end: datetime,
        *,
        site: str | None = None,
        kiosk: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        cat: str | None = None,
        pid: str | None = None,
        hh: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Entry]:
        """Up to `limit` entries with `start <= ts < end` matching every filter (`reason`: one of its
        reasons; `cat`: the pass colour), newest first by (ts, id), and only those before `after`, the
        (ts, id) of the last one shown."""

    @abstractmethod
    def counts_by_kiosk(self, start: datetime, end: datetime) -> list[KioskCounts]:
        """Per kiosk with entries or fever alerts in [start, end): its counts, by site and kiosk (the
        overview's today; counted in the database)."""

    @abstractmethod
    def kiosks(self, *, site: str | None = None) -> list[tuple[str, str]]:
        """Every (site, kiosk) ever heard from (entries or status), sorted."""

    @abstractmethod
    def site_reported(self, site: str) -> bool:
        """Whether any entry, status or alert from `site` was ever stored (entries purged since count)."""

    @abstractmethod
    def kiosk_states(self, *, site: str | None = None) -> list[KioskState]:
        """The live state of each kiosk that has sent a status (or will), sorted by site and kiosk."""

    @abstractmethod
    def offline_intervals(
        self, start: datetime, end: datetime, *, site: str | None = None
    ) -> list[tuple[str, str, datetime, datetime | None]]:
        """(site, kiosk, went offline, came back or None) for offline periods overlapping [start, end).

        Ordered by site, kiosk and time; a period ending exactly at `start` does not overlap.
        """

    @abstractmethod
    def alerts_between(self, start: datetime, end: datetime, *, site: str | None = None) -> list[StoredAlert]:
        """Alerts with `start <= ts < end`, ordered by ts."""

    @abstractmethod
    def first_seen_passes(self, start: datetime, end: datetime, *, site: str | None = None) -> list[str]:
        """Pass ids whose earliest stored entry (at that site) falls in [start, end), sorted."""

    @abstractmethod
    def import_registry(self, passes: Sequence[IssuedPass]) -> int:
        """Add or replace issued passes by pid; returns how many rows were written."""

    @abstractmethod
    def registry(self) -> list[IssuedPass]:
        """The issued-pass registry, sorted by pid."""

    @abstractmethod
    def purge(self, before: datetime, *, now: datetime) -> int:
        """Delete entries with ts < before (and older dead letters), log the purge, return entries deleted."""

    @abstractmethod
    def purged_between(self, start: datetime, end: datetime) -> int:
        """How many entries the purges logged in [start, end) deleted."""

    @abstractmethod
    def log_trace(self, who: str, query: str, at: datetime) -> None:
        """Record that `who` ran a trace `query` (its parameters, never a raw ID number) at `at`."""

    @abstractmethod
    def trace_log(self) -> list[tuple[datetime, str, str]]:
        """(at, who, query) for every trace run, oldest first."""

    # -- users and the audit log (office/store/users.py) -----------------------------------------------

    @abstractmethod
    def add_user(self, name: str, role: Role, password_hash: str, *, by: str, at: datetime) -> bool:
        """Add a user and audit it as `by`, in one transaction; False (and nothing written) if the name is
        taken."""

    @abstractmethod
    def update_user(self, name: str, *, by: str, at: datetime, password_hash: str | None = None,
                    role: Role | None = None, disabled: bool | None = None) -> bool:
        """Change what is given and audit it as `by`, in one transaction; False if there is no such user."""

    @abstractmethod
    def user(self, name: str) -> User | None:
        """The user of that name, disabled or not."""

    @abstractmethod
    def users(self) -> list[User]:
        """Every user, by name."""

    @abstractmethod
    def audit(self, who: str, action: str, detail: str, at: datetime) -> None:
        """Add a line to the audit log."""

    @abstractmethod
    def audit_log(self, *, limit: int = 200) -> list[AuditRecord]:
        """The newest `limit` lines of the audit log, newest first."""

    @abstractmethod
    def open_web_session(self, session_hash: str, user: str, *, at: datetime, expires: datetime) -> None:
        """Record a signed-in session by the hash of its secret id (and forget expired ones)."""

    @abstractmethod
    def web_session_user(self, session_hash: str, *, now: datetime) -> str | None:
        """The user of an open, unexpired session; None if it was signed out, closed or has expired."""

    @abstractmethod
    def close_web_sessions(self, *, session_hash: str | None = None, user: str | None = None) -> int:
        """End one session, or every session of `user`; how many ended."""

    @abstractmethod
    def signin_failed(self, keys: Sequence[str], *, at: datetime, forget_before: datetime) -> None:
        """Count a failed sign-in against each key (an address, a name); forget failures before
        `forget_before`."""

    @abstractmethod
    def signin_failures(self, keys: Sequence[str], *, since: datetime) -> dict[str, list[datetime]]:
        """Each key's failed sign-ins since `since`, oldest first."""

    @abstractmethod
    def signin_succeeded(self, keys: Sequence[str]) -> None:
        """Forget the failures of these keys."""

    # -- passes and revocations (office/store/passes.py) ------------------------------------------------

    @abstractmethod
    def issue_passes(self, site: str, passes: Sequence[tuple[IssuedPass, str]], *, by: str,
                     at: datetime) -> list[str]:
        """Add (registry row, signed text) passes issued at `site` and audit `pass.issue` as `by`, in one
        transaction. Returns the pids taken (in the registry, or twice in `passes`): then nothing is
        written."""

    @abstractmethod
    def pass_records(self, *, cat: str | None = None, hh: str | None = None, pid: str | None = None,
                     limit: int = 300) -> list[PassRecord]:
        """Registry passes matching every filter, newest issued first (imported ones after, by nbf)."""

    @abstractmethod
    def passes_of(self, pids: Sequence[str]) -> list[PassRecord]:
        """The registry passes of `pids` that exist, in the order given."""

    @abstractmethod
    def expiring_passes(self, start: datetime, end: datetime, *, limit: int = 1000) -> list[PassRecord]:
        """Registry passes whose validity ends in [start, end), soonest first."""

    @abstractmethod
    def revocations(self, *, site: str | None = None) -> list[Revocation]:
        """Revoked passes, newest first."""

    @abstractmethod
    def revoke_passes(self, site: str, pids: Sequence[str], *, by: str, at: datetime,
                      note: str) -> tuple[list[str], RevocationState]:
        """Revoke `pids` at `site` with `note`; when any is new, the site's serial goes up by one and
        `pass.revoke` is audited as `by`, in one transaction. The pids newly revoked and the state after."""

    @abstractmethod
    def revocation_state(self, site: str) -> RevocationState:
        """The site's serial (0 before any revocation), the newest published one and every revoked pid."""

    @abstractmethod
    def renumber_revocations(self, site: str, *, by: str, at: datetime) -> RevocationState:
        """Raise the site's serial by one, to sign and publish the list again; audited as
        `pass.revoke.publish`."""

    @abstractmethod
    def revocations_published(self, site: str, serial: int, *, at: datetime) -> None:
        """Record that the broker took the site's list numbered `serial`."""

    # -- kept reports (office/store/reports.py) ----------------------------------------------------------

    @abstractmethod
    def keep_report(self, site: str | None, day: date, *, made_at: datetime, made_by: str, zero: bool,
                    json_text: str, csv_text: str, png: bytes | None) -> int:
        """Keep a report made (`site` None: every site) beside the earlier versions; its number."""

    @abstractmethod
    def kept_reports(self, *, limit: int = 200) -> list[KeptReport]:
        """The reports made, newest day first (and the newest version of a day first)."""

    @abstractmethod
    def kept_report(self, n: int) -> KeptReportFiles | None:
        """The report numbered `n` with its JSON, CSV and PNG."""

    # -- handling alerts (office/store/alerts.py) --------------------------------------------------------

    @abstractmethod
    def acknowledge_alert(self, alert_id: str, *, by: str, at: datetime, note: str = "") -> bool:
        """Mark the alert acknowledged by `by` and audit it, in one transaction; False if it already was."""

    @abstractmethod
    def resolve_alert(self, alert_id: str, *, by: str, at: datetime, note: str) -> bool:
        """Mark the alert resolved (and acknowledged, if not yet) and audit it, in one transaction; False if
        it already was resolved."""

    @abstractmethod
    def recent_alerts(self, *, limit: int = 200) -> list[AlertView]:
        """The newest `limit` stored alerts, newest first."""

    @abstractmethod
    def alerts_after(self, n: int, *, limit: int = 100) -> list[AlertView]:
        """Stored alerts inserted after the one numbered `n`, oldest first."""

    @abstractmethod
    def alert_handling(self, alert_ids: Sequence[str]) -> dict[str, AlertHandling]:
        """The handling of those of `alert_ids` that were acknowledged."""

    @abstractmethod
    def open_alerts(self, *, limit: int) -> tuple[list[AlertView], int]:
        """The newest `limit` stored alerts not resolved, newest first, and how many there are in all."""

    @abstractmethod
    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""

    @abstractmethod
    def count_entries(self) -> int:
        """All stored entries."""

    @abstractmethod
    def ping(self) -> None:
        """Ask the database the cheapest question there is; StoreError if it cannot answer."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; safe to call again."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
