"""A private mosquitto on loopback (simulation and tests), and a broker reachability probe."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

_SYSTEMD_NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class BrokerError(Exception):
    """The broker could not be started or reached."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalBroker:
    """A mosquitto process listening only on a loopback address.

    Without options anyone may connect. With `password_file` anonymous clients are refused, `acl_file`
    applies an ACL, `persistence_dir` keeps retained messages and sessions across restarts, and
    `extra_config` lines are appended. `stop()` then `start()` restarts it on the same port.

    Started from the main thread, mosquitto also ends when this process dies without stopping it (even
    by SIGKILL): it runs under `setpriv --pdeathsig TERM`. The kernel sends that signal when the thread
    that started it ends, so from any other thread it is not set.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, mosquitto: str = "mosquitto",
                 start_timeout_s: float = 5.0, password_file: Path | None = None,
                 acl_file: Path | None = None, persistence_dir: Path | None = None,
                 extra_config: str = "") -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("LocalBroker listens on loopback only")
        self.host = host
        self.port = port or free_port(host)
        self.password_file = password_file
        self.acl_file = acl_file
        self.persistence_dir = persistence_dir
        self.extra_config = extra_config
        self._mosquitto = mosquitto
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def _config(self) -> str:
        lines = [f"listener {self.port} {self.host}",
                 f"allow_anonymous {'false' if self.password_file else 'true'}",
                 f"persistence {'true' if self.persistence_dir else 'false'}"]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file.resolve()}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file.resolve()}")
        if self.persistence_dir is not None:
            lines.append(f"persistence_location {self.persistence_dir.resolve()}/")
        if os.geteuid() == 0:
            # else mosquitto drops to user mosquitto: it could not read our files, and the change of user
            # would clear the parent-death signal
            lines.append("user root")
        lines += ["log_dest stderr", "log_type error", "log_type warning", self.extra_config]
        return "\n".join(lines) + "\n"

    def start(self) -> LocalBroker:
        """Start mosquitto and wait until it accepts connections."""
        # Debian installs mosquitto in /usr/sbin, which an ordinary user's PATH leaves out.
        exe = shutil.which(self._mosquitto) or shutil.which(self._mosquitto, path="/usr/sbin:/sbin")
        if exe is None:
            raise BrokerError(f"{self._mosquitto} not found; install the mosquitto package")
        if self._proc is not None:
            raise BrokerError("LocalBroker is already running")
        self._dir = tempfile.TemporaryDirectory(prefix="kiosk-broker-")
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(self._config(), encoding="utf-8")
        command = [exe, "-c", str(conf)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None and threading.current_thread() is threading.main_thread():
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        # mosquitto speaks sd_notify itself: our service's notify socket and watchdog are not its own
        env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_NOTIFY_ENV}
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self.stop()
                raise BrokerError(f"mosquitto exited at start: {err.strip()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} in time")

    @property
    def pid(self) -> int | None:
        """mosquitto's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, *, kill: bool = False) -> None:
        """Stop mosquitto (`kill`: SIGKILL, as a crash or power cut would); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stderr:
                proc.stderr.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def probe_broker(host: str, port: int, *, timeout_s: float = 3.0, username: str | None = None,
                 password: bytes | None = None, tls_ca: Path | None = None,
                 tls: bool = False) -> None:
    """Connect with MQTT v5 and wait for CONNACK; raise BrokerError saying why not."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password.decode() if password else None)
    if tls:
        try:
            client.tls_set(ca_certs=str(tls_ca) if tls_ca else None)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"TLS CA file {tls_ca}: {getattr(exc, 'strerror', None) or exc}") from None
    done = threading.Event()
    result: list[ReasonCode] = []

    def on_connect(c: mqtt.Client, userdata: object, flags: object, rc: ReasonCode,
                   props: object = None) -> None:
        result.append(rc)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise BrokerError(f"{host}:{port}: {exc.strerror or exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise BrokerError(f"{host}:{port}: no CONNACK within {timeout_s:g} s")
        if result[0].is_failure:
            raise BrokerError(f"{host}:{port}: refused: {result[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
