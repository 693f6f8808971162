"""An HTTP(S) connection whose every step (name resolution, connect, TLS handshake, each send and recv)
gets only the time left before one deadline, so a slow or trickling server cannot stretch it."""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


def _resolve(host: str, port: int, deadline: float) -> Sequence[_AddrInfo]:
    """getaddrinfo in a thread, bounded by the deadline (the resolver itself has no timeout)."""
    box: list[Sequence[_AddrInfo] | OSError | ValueError] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, ValueError) as exc:
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="health-http-dns", daemon=True).start()
    if not done.wait(_remaining(deadline)):
        raise TimeoutError("name resolution timed out")
    if isinstance(box[0], OSError | ValueError):
        raise box[0]
    return box[0]


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


class _DeadlineSocket:
    """The socket http.client sees: every send and recv gets only the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        self.sock = sock
        self._deadline = deadline

    def arm(self) -> None:
        self.sock.settimeout(_remaining(self._deadline()))

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.arm()
            view = view[self.sock.send(view) :]

    def makefile(self, mode: str) -> io.BufferedReader:
        # socket.makefile keeps the fd open until this reader is closed too, as http.client expects
        return io.BufferedReader(_DeadlineReader(self, self.sock.makefile("rb", buffering=0)))

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(io.RawIOBase):
    """A raw socket reader that re-arms the deadline before each recv, so trickled bytes cannot stretch it."""

    def __init__(self, owner: _DeadlineSocket, raw: socket.SocketIO) -> None:
        super().__init__()
        self._owner = owner
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        self._owner.arm()
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class DeadlineConnection(http.client.HTTPConnection):
    """An HTTP(S) connection that resolves, connects, handshakes and exchanges within `deadline`."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self._tls = tls
        self.deadline = 0.0
        self.idle_since = 0.0
        if tls is not None:
            self.default_port = 443

    def connect(self) -> None:
        sock = _connect(self.host, self.port, self.deadline)
        if self._tls is not None:
            try:
                sock.settimeout(_remaining(self.deadline))  # the TLS handshake is bounded as a whole
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = _DeadlineSocket(sock, lambda: self.deadline)
