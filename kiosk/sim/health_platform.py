"""A stand-in health-code platform on 127.0.0.1 for the simulator: answers ID lookups by keyed hash."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

MAX_REQUEST = 16 * 1024


class HealthPlatform:
    """Answers `{"idh": ...}` with the colour registered for that person, timestamped by `now`."""

    def __init__(self, *, now: Callable[[], datetime]) -> None:
        self._now = now
        self._status: dict[str, str] = {}
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                platform._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-platform", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/health"

    def set_status(self, idh: str, status: str) -> None:
        with self._lock:
            self._status[idh] = status

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        try:
            length = int(request.headers.get("Content-Length", "0"))
            body = json.loads(request.rfile.read(min(length, MAX_REQUEST)))
            idh = str(body.get("idh") or "")
        except (ValueError, AttributeError):
            self._send(request, 400, {"error": "bad request"})
            return
        with self._lock:
            status = self._status.get(idh)
        if status is None:
            self._send(request, 404, {"status": "invalid"})
            return
        self._send(request, 200, {"status": status, "generated_at": self._now().isoformat(),
                                  "name_masked": "", "idh": idh})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, code: int, doc: dict[str, str]) -> None:
        data = json.dumps(doc).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
