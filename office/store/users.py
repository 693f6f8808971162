"""The users of the office web app and the audit log, in portable SQL: a mixin of `SqlStore`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, cast

from office.store.base import ROLES, AuditRecord, Role, User
from office.store.schema import Cursor, check_aware

_USER_COLUMNS = "name, role, password_hash, disabled, created, updated"
_INSERT_AUDIT = "INSERT INTO audit (at, who, action, detail) VALUES (?, ?, ?, ?)"


class UserQueries(ABC):
    """`Store`'s user and audit methods over the transactions and time columns of a `SqlStore`."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _t(self, value: datetime) -> Any: ...

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def _user(self, row: Any) -> User:
        name, role, password_hash, disabled, created, updated = row
        if role not in ROLES:
            raise ValueError(f"user {name!r} has the unknown role {role!r}")
        return User(name, cast(Role, role), password_hash, bool(disabled), self._time(created),
                    self._time(updated))

    @staticmethod
    def _time(value: Any) -> datetime:
        return check_aware(datetime.fromisoformat(value) if isinstance(value, str) else value)

    def add_user(self, name: str, role: Role, password_hash: str, *, by: str, at: datetime) -> bool:
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        when = self._t(at)
        with self._transaction(write=True) as cur:
            cur.execute(f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (name) DO NOTHING", (name, role, password_hash, False, when, when))
            if cur.rowcount != 1:
                return False
            cur.execute(_INSERT_AUDIT, (when, by, "user.add", f"{name} role={role}"))
        return True

    def update_user(self, name: str, *, by: str, at: datetime, password_hash: str | None = None,
                    role: Role | None = None, disabled: bool | None = None) -> bool:
        if role is not None and role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        changes: list[tuple[str, Any, str, str]] = []  # column, value, action, detail
        if password_hash is not None:
            changes.append(("password_hash", password_hash, "user.passwd", name))
        if role is not None:
            changes.append(("role", role, "user.role", f"{name} role={role}"))
        if disabled is not None:
            changes.append(("disabled", disabled, "user.disable" if disabled else "user.enable", name))
        when = self._t(at)
        with self._transaction(write=True) as cur:
            sets = "".join(f"{column} = ?, " for column, *_ in changes)
            cur.execute(f"UPDATE users SET {sets}updated = ? WHERE name = ?",
                        (*(value for _, value, *_ in changes), when, name))
            if cur.rowcount != 1:
                return False
            cur.executemany(_INSERT_AUDIT, [(when, by, action, detail) for *_, action, detail in changes])
        return True

    def user(self, name: str) -> User | None:
        rows = self._select(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return self._user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [self._user(row) for row in self._select(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]

    def audit(self, who: str, action: str, detail: str, at: datetime) -> None:
        with self._transaction(write=True) as cur:
            cur.execute(_INSERT_AUDIT, (self._t(at), who, action, detail))

    def audit_log(self, *, limit: int = 200) -> list[AuditRecord]:
        rows = self._select("SELECT at, who, action, detail FROM audit ORDER BY at DESC, n DESC LIMIT ?",
                            (limit,))
        return [AuditRecord(self._time(at), who, action, detail) for at, who, action, detail in rows]

    # -- web sessions and failed sign-ins: shared by every web process on this store --------------------

    def open_web_session(self, session_hash: str, user: str, *, at: datetime, expires: datetime) -> None:
        with self._transaction(write=True) as cur:
            cur.execute("DELETE FROM web_sessions WHERE expires <= ?", (self._t(at),))
            cur.execute("INSERT INTO web_sessions (session_hash, username, created, expires)"
                        " VALUES (?, ?, ?, ?)", (session_hash, user, self._t(at), self._t(expires)))

    def web_session_user(self, session_hash: str, *, now: datetime) -> str | None:
        rows = self._select("SELECT username FROM web_sessions WHERE session_hash = ? AND expires > ?",
                            (session_hash, self._t(now)))
        return str(rows[0][0]) if rows else None

    def close_web_sessions(self, *, session_hash: str | None = None, user: str | None = None) -> int:
        if (session_hash is None) == (user is None):
            raise ValueError("close_web_sessions: give session_hash or user")
        column, value = ("session_hash", session_hash) if session_hash is not None else ("username", user)
        with self._transaction(write=True) as cur:
            cur.execute(f"DELETE FROM web_sessions WHERE {column} = ?", (value,))
            return int(cur.rowcount)

    def signin_failed(self, keys: Sequence[str], *, at: datetime, forget_before: datetime) -> None:
        with self._transaction(write=True) as cur:
            cur.execute("DELETE FROM signin_failures WHERE at < ?", (self._t(forget_before),))
            cur.executemany("INSERT INTO signin_failures (failure_key, at) VALUES (?, ?)",
                            [(key, self._t(at)) for key in keys])

    def signin_failures(self, keys: Sequence[str], *, since: datetime) -> dict[str, list[datetime]]:
        found: dict[str, list[datetime]] = {key: [] for key in keys}
        if keys:
            marks = ", ".join("?" * len(keys))
            rows = self._select(f"SELECT failure_key, at FROM signin_failures WHERE failure_key IN ({marks})"
                                " AND at >= ? ORDER BY at", (*keys, self._t(since)))
            for key, at in rows:
                found[key].append(self._time(at))
        return found

    def signin_succeeded(self, keys: Sequence[str]) -> None:
        if keys:
            with self._transaction(write=True) as cur:
                marks = ", ".join("?" * len(keys))
                cur.execute(f"DELETE FROM signin_failures WHERE failure_key IN ({marks})", tuple(keys))
