"""SQLite files the kiosk and the office create hold person refs and entries: only their owner may read them.

Each file is made under a permissive umask (022), and checked with its -wal and -shm files while open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checkpoint.residents import Registry, Resident
from kiosk.mqtt.nonces import NonceStore
from kiosk.outbox import Outbox
from office.store.sqlite import SqliteStore


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def registry(path: Path) -> Iterator[None]:
    with Registry(path) as reg:
        reg.upsert([Resident("ab" * 32, "110***********002X", "9-23-301")])
        yield


@contextmanager
def office_store(path: Path) -> Iterator[None]:
    store = SqliteStore(path)
    try:
        store.log_trace("test", "a write: the -wal and -shm files exist", datetime.now(UTC))
        yield
    finally:
        store.close()


@contextmanager
def outbox(path: Path) -> Iterator[None]:
    with Outbox(path, site="s1", kiosk="gate-north"):
        yield


@contextmanager
def nonces(path: Path) -> Iterator[None]:
    store = NonceStore(path)
    try:
        store.advance(1.0e9)
        yield
    finally:
        store.close()


OPENERS: dict[str, Callable[[Path], AbstractContextManager[None]]] = {
    "resident registry": registry,
    "office store": office_store,
    "outbox": outbox,
    "command nonces": nonces,
}


def mode(path: Path) -> str:
    return f"{path.stat().st_mode & 0o777:04o}"


@pytest.mark.parametrize("name", OPENERS)
def test_a_new_sqlite_file_and_its_wal_and_shm_are_owner_only(tmp_path: Path, name: str) -> None:
    path = tmp_path / "db.sqlite"
    with umask(0o022), OPENERS[name](path):
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        found = {f.name: mode(f) for f in files if f.exists()}
    assert path.name in found
    assert found == dict.fromkeys(found, "0600")
