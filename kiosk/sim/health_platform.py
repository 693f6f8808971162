"""A stand-in health-code platform on 127.0.0.1 for the simulator and tests.

It answers ID lookups (`{"idh": ...}`, by the site-keyed hash) and scanned codes (`{"code": ...}`) with
the JSON the `http` provider reads: `status`, `generated_at`, `name_masked`, `idh`, and, for a person it
knows them of, the travel card (`travel`, `star`) and its own person reference `hpr`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

MAX_REQUEST = 16 * 1024


@dataclass(frozen=True)
class Record:
    """What the platform knows of one person or code."""

    status: str
    travel: str | None = None
    star: bool = False
    hpr: str | None = None


class HealthPlatform:
    """Answers with the record registered for a person (by `idh`) or a code, timestamped by `now`."""

    def __init__(self, *, now: Callable[[], datetime]) -> None:
        self._now = now
        self._people: dict[str, Record] = {}
        self._codes: dict[str, Record] = {}
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

    def set_status(self, idh: str, status: str, *, travel: str | None = None, star: bool = False,
                   hpr: str | None = None) -> None:
        """What an ID lookup of `idh` answers from now on."""
        with self._lock:
            self._people[idh] = Record(status, travel, star, hpr)

    def set_code(self, code: str, status: str, *, travel: str | None = None, star: bool = False,
                 hpr: str | None = None) -> None:
        """What a scanned `code` answers from now on."""
        with self._lock:
            self._codes[code] = Record(status, travel, star, hpr)

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
            code = str(body.get("code") or "")
        except (ValueError, AttributeError):
            self._send(request, 400, {"error": "bad request"})
            return
        with self._lock:
            record = self._people.get(idh) if idh else self._codes.get(code)
        if record is None:
            self._send(request, 404, {"status": "invalid"})
            return
        doc: dict[str, Any] = {"status": record.status, "generated_at": self._now().isoformat(),
                               "name_masked": "", "idh": idh or None}
        if record.travel is not None:
            doc |= {"travel": record.travel, "star": record.star}
        if record.hpr is not None:
            doc["hpr"] = record.hpr
        self._send(request, 200, doc)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
