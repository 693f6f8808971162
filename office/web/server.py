"""The web app under uvicorn in a thread of the office service: `WebServer(config, store).start()`."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime

import uvicorn

from checkpoint.entry import utc_now
from office.config import OfficeConfig
from office.mqtt import BrokerLink
from office.store.base import Store
from office.web.app import create_app
from office.web.core import WebSettings

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
STREAM_GRACE_S = 2  # at shutdown, open event streams (/alerts/events) are cancelled after this


class WebError(Exception):
    """The web server could not start (e.g. the port is taken, or the certificate is unreadable)."""


def settings_of(config: OfficeConfig) -> WebSettings:
    """The app's settings from the office config."""
    web = config.web
    return WebSettings(tz=config.report.zone, silent_after_s=web.silent_after_s,
                       session_hours=web.session_hours, tls=web.tls, sites=dict(config.sites),
                       broker=BrokerLink.of(config))


class WebServer:
    """uvicorn serving the app on [web] host:port (HTTPS with tls_certfile and tls_keyfile)."""

    def __init__(self, config: OfficeConfig, store: Store, *,
                 now: Callable[[], datetime] = utc_now) -> None:
        web = config.web
        key = web.session_key()
        if key is None:
            log.warning("web: no session_key_file or session_key_credential: a random key for this run, so "
                        "a restart signs everyone out")
            key = secrets.token_bytes(32)
        app = create_app(store, key, settings_of(config), now=now)
        self.scheme = "https" if web.tls else "http"
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=web.host, port=web.port, log_config=None, access_log=False, lifespan="off",
            ssl_certfile=web.tls_certfile, ssl_keyfile=web.tls_keyfile, server_header=False,
            timeout_graceful_shutdown=STREAM_GRACE_S))
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)

    @property
    def alive(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    @property
    def port(self) -> int:
        """The port it listens on (the configured one, or the one the OS chose for port 0)."""
        servers = self._server.servers
        if servers and servers[0].sockets:
            return int(servers[0].sockets[0].getsockname()[1])
        return self._server.config.port

    def start(self) -> WebServer:
        """Serve in the `web` thread; return once listening, or raise WebError."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise WebError(f"cannot serve on {self._server.config.host}:{self._server.config.port} "
                           "(see the log above)")
        log.info("web: serving %s://%s:%d/", self.scheme, self._server.config.host, self.port)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, finish the requests in flight, and join the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("web: did not stop within %g s", timeout_s)
