"""What the web app's tests share: the time, the session key, three users with their roles, signing in."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from kiosk.mqtt.local_broker import free_port
from office.config import OfficeConfig
from office.ingest.service import Collector
from office.store.base import Role, Store
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

NOW = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
KEY = b"k" * 32
PASSWORD = "correct horse battery"
USERS: tuple[tuple[str, Role], ...] = (("guard1", "guard"), ("clerk", "office"), ("boss", "admin"))


@contextmanager
def store_with_users(path: Path) -> Iterator[Store]:
    """A SQLite store holding USERS, each with PASSWORD."""
    with SqliteStore(path) as opened:
        for name, role in USERS:
            opened.add_user(name, role, hash_password(PASSWORD), by="test", at=NOW - timedelta(days=1))
        yield opened


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match[1]


def sign_in(client: TestClient, name: str, password: str = PASSWORD, *, next_path: str = "/overview"
            ) -> tuple[int, str]:
    """Sign in through the form; the status code and where it sends the browser (or the page)."""
    token = csrf_of(client.get("/signin").text)
    response = client.post("/signin", data={"csrf": token, "username": name, "password": password,
                                            "next": next_path})
    return response.status_code, response.headers.get("location", response.text)


@dataclass
class Served:
    """The office service under test: its URL, and after it stopped, how long that took."""

    url: str
    stop_s: float = 0.0


@contextmanager
def office_web(tmp_path: Path, db: Path, *, config: dict[str, Any] | None = None) -> Iterator[Served]:
    """`kiosk-office run`'s service with the web app only, on the SQLite store at `db`, on a free port;
    `config` adds sections (e.g. "sites", "broker") or keys of [web]."""
    key = tmp_path / "session.key"
    key.write_bytes(b"s" * 32)
    key.chmod(0o600)
    port = free_port()
    extra = dict(config or {})
    web = {"port": port, "session_key_file": str(key), **extra.pop("web", {})}
    settings = OfficeConfig.model_validate({
        "store": {"kind": "sqlite", "path": str(db)}, "ingest": {"enabled": False}, "web": web, **extra})
    stop = threading.Event()
    service = Collector(settings, stop=stop, serve_web=True)
    thread = threading.Thread(target=service.run, name="office-under-test")
    thread.start()
    served = Served(f"http://127.0.0.1:{port}")
    try:
        for _ in range(200):
            if service.web is not None and service.web.alive and service.web.port == port:
                try:
                    urllib.request.urlopen(f"{served.url}/signin", timeout=1).close()
                    break
                except OSError:
                    pass
            stop.wait(0.05)
        yield served
    finally:
        stop.set()
        began = time.monotonic()
        thread.join(15)
        served.stop_s = time.monotonic() - began
    assert not thread.is_alive()
    assert not any(t.name == "web" for t in threading.enumerate())
