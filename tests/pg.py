"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary directory, loopback only."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from kiosk.mqtt.local_broker import free_port

REQUIRE_ENV = "CHECKPOINT_REQUIRE_POSTGRES"


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries (or no way to run them) on this machine."""


class PostgresError(Exception):
    """The test server could not be started."""


def find_bindir(pattern: str = "/usr/lib/postgresql/*/bin") -> Path:
    """The newest PostgreSQL bin directory that has initdb, pg_ctl and postgres."""
    found = [Path(p) for p in Path("/").glob(pattern.lstrip("/"))
             if all((Path(p) / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres"))]
    if not found:
        raise PostgresUnavailable(f"no PostgreSQL server binaries in {pattern} "
                                  "(Debian: apt-get install postgresql)")
    return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0])


class PostgresServer:
    """A private PostgreSQL cluster: `initdb --auth=trust`, listening on 127.0.0.1 only, torn down on stop.

    As root, initdb and the server run as the `postgres` system user (PostgreSQL refuses to run as root).
    `durable=False` turns fsync off: fine for a throwaway test cluster, wrong for a benchmark.
    """

    def __init__(self, bindir: Path | None = None, *, durable: bool = False, timeout_s: float = 30.0) -> None:
        self.bindir = bindir or find_bindir()
        self.durable = durable
        self.timeout_s = timeout_s
        self.port = 0
        self._dir: Path | None = None
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            try:
                pwd.getpwnam(self._user)
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run "
                                          "PostgreSQL as") from None

    @property
    def dsn(self) -> str:
        """The superuser's DSN for the `postgres` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        """A DSN for database `dbname` on this server."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=10"

    def _run(self, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        try:
            return subprocess.run(cmd, cwd=directory, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=self.timeout_s + 5, check=False)
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{args[0]} {args[-1]} did not finish in {self.timeout_s + 5:g} s") from None

    def start(self) -> PostgresServer:
        """initdb into a new temporary directory and start the server; wait until it accepts connections."""
        if self._dir is not None:
            raise PostgresError("already started")
        self._dir = directory = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        try:
            if self._user is not None:
                shutil.chown(directory, user=self._user, group=self._user)
            data = directory / "data"
            done = self._run(directory, "initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--locale=C", "--no-sync")
            if done.returncode != 0:
                raise PostgresError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
            for _attempt in range(3):
                self.port = free_port()
                options = [f"-c listen_addresses=127.0.0.1 -c port={self.port}",
                           f"-c unix_socket_directories='{directory}'", "-c max_connections=50"]
                if not self.durable:
                    options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
                done = self._run(directory, "pg_ctl", "-D", str(data), "-l", str(directory / "server.log"),
                                 "-w", "-t", str(int(self.timeout_s)), "-o", " ".join(options), "start")
                if done.returncode == 0:
                    return self
                if "already in use" not in self.log():
                    break
            raise PostgresError(f"pg_ctl start failed: {done.stderr.strip()}\n{self.log()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        """The server log so far."""
        if self._dir is None:
            return ""
        try:
            return (self._dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """`pg_ctl stop -m fast` (SIGKILL if that does not work) and remove the directory; safe twice."""
        directory, self._dir = self._dir, None
        if directory is None:
            return
        pidfile = directory / "data" / "postmaster.pid"
        try:
            if not pidfile.exists():
                return
            try:
                stopped = self._run(directory, "pg_ctl", "-D", str(directory / "data"), "-m", "fast", "-w",
                                    "-t", "20", "stop").returncode == 0
            except PostgresError:
                stopped = False
            if not stopped and pidfile.exists():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid = int(pidfile.read_text().split()[0])  # the postmaster this server started
                    os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        os.kill(pid, 0)  # raises once it is gone
                        time.sleep(0.05)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """Create an empty database on the server of `admin_dsn`, yield its DSN, drop it afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # name is ours: [a-z0-9_]
    try:
        yield re.sub(r"dbname=\S+", f"dbname={name}", admin_dsn)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
