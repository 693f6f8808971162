"""The `http` health provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from checkpoint import idnumber
from checkpoint.reasons import HealthStatus, Reason
from kiosk.credentials import http as health_http
from kiosk.credentials.http import HttpHealthProvider
from kiosk.credentials.verdict import HealthFacts
from kiosk.sim.health_platform import HealthPlatform
from office.admin import cli as admin
from office.admin.platform import PlatformError, lookup_hpr

NOW = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
TS = NOW.timestamp()
TIMEOUT = 0.5
MARGIN = 0.5

Reply = Callable[["_Handler"], None]
Make = Callable[..., HttpHealthProvider]


@dataclass
class Seen:
    """One request the platform received."""

    path: str
    headers: dict[str, str]
    body: bytes
    port: int


@dataclass
class Platform:
    """A scripted platform: request n gets replies[n], or the last reply once the script runs out."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    port: int = 0

    def script(self, *replies: Reply) -> None:
        """Set what the next requests get."""
        self.replies = list(replies)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    platform: Platform

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = self.platform.seen
        seen.append(Seen(self.path, dict(self.headers.items()), body, self.client_address[1]))
        self.platform.replies[min(len(seen), len(self.platform.replies)) - 1](self)

    def finish(self) -> None:
        super().finish()
        self.platform.disconnected.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on slow replies are the point of several tests


def send(status: int, body: bytes, ctype: str = "application/json", **headers: str) -> Reply:
    """A reply with a Content-Length."""

    def reply(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.end_headers()
        h.wfile.write(body)

    return reply


def answer(status: object = "green", generated_at: object = TS - 10, **extra: object) -> Reply:
    """A platform answer as JSON."""
    doc = {"status": status, "generated_at": generated_at, "name_masked": "张*", "idh": "idh-1", **extra}
    return send(200, json.dumps(doc).encode())


def slow(h: _Handler) -> None:
    h.platform.stop.wait(3)
    answer()(h)


def trickle_body(h: _Handler) -> None:
    body = json.dumps({"status": "green", "generated_at": TS}).encode()
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    for i in range(len(body)):
        if h.platform.stop.wait(0.2):
            return
        h.wfile.write(body[i : i + 1])


def trickle_headers(h: _Handler) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 40
    for i in range(len(head)):
        if h.platform.stop.wait(0.2):
            return
        h.wfile.write(head[i : i + 1])


def close_delimited(body: bytes) -> Reply:
    def reply(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    return reply


def short_body(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.write(json.dumps({"status": "green", "generated_at": TS}).encode())  # a valid prefix
    h.close_connection = True


def drop_after(reply: Reply) -> Reply:
    """Reply as if keeping the connection alive, then close it anyway."""

    def dropping(h: _Handler) -> None:
        reply(h)
        h.close_connection = True

    return dropping


def _serve(platform: Platform, tls: ssl.SSLContext | None = None) -> Iterator[Platform]:
    handler = type("Handler", (_Handler,), {"platform": platform})
    server = _Server(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    platform.port = server.server_address[1]
    platform.url = f"{'https' if tls else 'http'}://127.0.0.1:{platform.port}/v1/check?site=a"
    try:
        yield platform
    finally:
        platform.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def platform() -> Iterator[Platform]:
    yield from _serve(Platform(replies=[answer()]))


@pytest.fixture
def make(platform: Platform) -> Iterator[Make]:
    providers: list[HttpHealthProvider] = []

    def factory(**kwargs: Any) -> HttpHealthProvider:
        kwargs.setdefault("timeout_s", TIMEOUT)
        providers.append(HttpHealthProvider(kwargs.pop("url", platform.url), **kwargs))
        return providers[-1]

    yield factory
    for provider in providers:
        provider.close()


@pytest.mark.parametrize(
    ("colour", "reasons"),
    [("green", ()), ("yellow", (Reason.HEALTH_CODE_YELLOW,)), ("red", (Reason.HEALTH_CODE_RED,))],
)
def test_colours(platform: Platform, make: Make, colour: HealthStatus, reasons: tuple[Reason, ...]) -> None:
    platform.script(answer(colour))
    verdict = make().check_code("HC-PAYLOAD-1", now=NOW)
    assert (verdict.kind, verdict.valid, verdict.status) == ("health_http", True, colour)
    assert verdict.reasons == reasons
    assert verdict.health == HealthFacts("http", colour, idh="idh-1", issued_at=int(TS) - 10)
    [seen] = platform.seen
    assert seen.path == "/v1/check?site=a"
    assert json.loads(seen.body) == {"code": "HC-PAYLOAD-1"}
    assert seen.headers["Content-Type"] == "application/json"
    assert "Authorization" not in seen.headers


@pytest.mark.parametrize("generated_at", ["2024-05-01T07:59:00Z", "2024-05-01T15:59:00+08:00", TS - 60])
def test_generated_at_forms(platform: Platform, make: Make, generated_at: object) -> None:
    platform.script(answer(generated_at=generated_at))
    verdict = make().check_code("x", now=NOW)
    assert verdict.valid
    assert verdict.health is not None and verdict.health.issued_at == int(TS) - 60


def test_stale_code_is_expired(platform: Platform, make: Make) -> None:
    platform.script(answer("red", generated_at=TS - 181))
    verdict = make(max_age_s=180).check_code("x", now=NOW)
    assert not verdict.valid
    assert verdict.status == "expired"
    assert verdict.reasons == (Reason.HEALTH_CODE_EXPIRED, Reason.HEALTH_CODE_RED)


def test_code_from_the_future_is_platform_down(platform: Platform, make: Make) -> None:
    platform.script(answer(generated_at=TS + 3600))
    verdict = make().check_code("x", now=NOW)
    assert (verdict.status, verdict.reasons) == ("platform_down", (Reason.PLATFORM_DOWN,))


def test_bearer_token(platform: Platform, make: Make) -> None:
    assert make(token=b"s3cret-token\n").check_code("x", now=NOW).valid
    assert platform.seen[0].headers["Authorization"] == "Bearer s3cret-token"


def test_check_idh(platform: Platform, make: Make) -> None:
    platform.script(answer("yellow", idh="idh-9"))
    verdict = make().check_idh("idh-9", now=NOW)
    assert json.loads(platform.seen[0].body) == {"idh": "idh-9"}
    assert verdict.reasons == (Reason.HEALTH_CODE_YELLOW,)
    assert verdict.health is not None and verdict.health.idh == "idh-9"


def test_check_idh_answer_about_someone_else(platform: Platform, make: Make) -> None:
    platform.script(answer(idh="idh-other"))
    assert make().check_idh("idh-9", now=NOW).status == "platform_down"


@pytest.mark.parametrize(
    "reply",
    [send(404, b'{"error": "unknown"}'), send(422, b""), answer("invalid")],
    ids=["404", "422", "status-invalid"],
)
def test_unknown_code_is_invalid(platform: Platform, make: Make, reply: Reply) -> None:
    platform.script(reply)
    provider = make(retries=3)
    verdict = provider.check_code("x", now=NOW)
    assert (verdict.valid, verdict.status) == (False, "invalid")
    assert verdict.reasons == (Reason.HEALTH_CODE_INVALID,)
    assert len(platform.seen) == 1
    provider.check_code("x", now=NOW)
    assert len(platform.seen) == 2  # not cached


@pytest.mark.parametrize("status", [400, 401, 403, 429])
def test_4xx_is_not_retried(platform: Platform, make: Make, status: int) -> None:
    platform.script(send(status, b"{}"), answer())
    verdict = make(retries=3).check_code("x", now=NOW)
    assert verdict.status == "platform_down"
    assert f"HTTP {status}" in verdict.detail
    assert len(platform.seen) == 1


def test_5xx_then_success_is_retried(platform: Platform, make: Make) -> None:
    platform.script(send(500, b"oops", "text/plain"), answer())
    assert make(retries=1).check_code("x", now=NOW).status == "green"
    assert len(platform.seen) == 2


def test_retry_budget(platform: Platform, make: Make) -> None:
    platform.script(send(503, b""), send(502, b""), send(500, b""), answer())
    verdict = make(retries=1).check_code("x", now=NOW)
    assert (verdict.status, verdict.detail) == ("platform_down", "HTTP 502")
    assert len(platform.seen) == 2
    platform.seen.clear()
    platform.script(send(500, b""), answer())
    assert make(retries=0).check_code("x", now=NOW).status == "platform_down"
    assert len(platform.seen) == 1


@pytest.mark.parametrize("reply", [slow, trickle_body, trickle_headers])
def test_hard_timeout(platform: Platform, make: Make, reply: Reply) -> None:
    platform.script(reply)
    provider = make(retries=3)
    start = time.monotonic()
    verdict = provider.check_code("x", now=NOW)
    elapsed = time.monotonic() - start
    assert verdict.status == "platform_down"
    assert "timeout" in verdict.detail
    assert TIMEOUT - 0.05 < elapsed < TIMEOUT + MARGIN
    assert len(platform.seen) == 1  # no time was left for a retry


GARBAGE: dict[str, Reply] = {
    "text": send(200, b"all good", "text/plain"),
    "html": send(200, b"<html><body>Please log in</body></html>", "text/html"),
    "list": send(200, b'["green"]'),
    "status-type": answer(1),
    "status-unknown": answer("purple"),
    "no-status": send(200, json.dumps({"generated_at": TS}).encode()),
    "no-generated-at": send(200, b'{"status": "green", "idh": "idh-1"}'),
    "generated-at-bool": answer(generated_at=True),
    "generated-at-word": answer(generated_at="yesterday"),
    "generated-at-naive": answer(generated_at="2024-05-01T07:59:00"),
    "generated-at-huge": answer(generated_at=10**30),
    "generated-at-nan": send(200, b'{"status": "green", "generated_at": NaN}'),
    "generated-at-inf": send(200, b'{"status": "green", "generated_at": 1e400}'),
    "idh-type": answer(idh=5),
    "name-type": answer(name_masked=["x"]),
    "not-utf8": send(200, b'{"status": "\xff"}'),
    "deep": send(200, b"[" * 60_000),
    "short": short_body,
    "redirect": send(302, b"", Location="http://example.invalid/"),
    "no-content": send(204, b""),
}


@pytest.mark.parametrize("reply", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_platform_down(platform: Platform, make: Make, reply: Reply) -> None:
    platform.script(reply, send(500, b""))
    verdict = make(retries=0).check_code("x", now=NOW)
    assert (verdict.valid, verdict.status) == (False, "platform_down")
    assert verdict.reasons == (Reason.PLATFORM_DOWN,)
    assert verdict.detail


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (answer(pad="x" * 100_000), "body of 100"),
        (
            close_delimited(b" " * 100_000 + json.dumps({"status": "green", "generated_at": TS}).encode()),
            "over",
        ),
    ],
    ids=["content-length", "close-delimited"],
)
def test_huge_body_is_capped(platform: Platform, make: Make, reply: Reply, detail: str) -> None:
    platform.script(reply)
    verdict = make().check_code("x", now=NOW)
    assert verdict.status == "platform_down"
    assert detail in verdict.detail


def test_connection_refused(make: Make) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    verdict = make(url=f"http://127.0.0.1:{port}/", retries=2).check_code("x", now=NOW)
    assert time.monotonic() - start < TIMEOUT
    assert verdict.status == "platform_down"
    assert "ConnectionRefusedError" in verdict.detail


def test_hostname_is_resolved(platform: Platform, make: Make) -> None:
    verdict = make(url=f"http://localhost:{platform.port}/v1/check").check_code("x", now=NOW)
    assert verdict.status == "green"
    assert len(platform.seen) == 1


def test_slow_name_resolution_times_out(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hanging_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        release.wait(5)
        raise OSError("resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    start = time.monotonic()
    verdict = make(url="https://health.example.org/check", retries=2).check_code("x", now=NOW)
    elapsed = time.monotonic() - start
    release.set()
    assert verdict.status == "platform_down"
    assert "timeout" in verdict.detail
    assert elapsed < TIMEOUT + MARGIN


def test_cache(platform: Platform, make: Make) -> None:
    clock = [100.0]
    provider = make(cache_s=30, clock=lambda: clock[0])
    first = provider.check_code("a", now=NOW)
    assert provider.check_code("a", now=NOW) == first
    assert len(platform.seen) == 1
    provider.check_code("b", now=NOW)
    assert len(platform.seen) == 2
    clock[0] += 29
    provider.check_code("a", now=NOW)
    assert len(platform.seen) == 2
    clock[0] += 2
    provider.check_code("a", now=NOW)
    assert len(platform.seen) == 3


def test_cached_answer_still_expires(platform: Platform, make: Make) -> None:
    provider = make(cache_s=3600, clock=lambda: 0.0)
    assert provider.check_code("a", now=NOW).valid
    later = provider.check_code("a", now=NOW + dt.timedelta(seconds=200))
    assert later.reasons == (Reason.HEALTH_CODE_EXPIRED,)
    assert len(platform.seen) == 1


def test_failures_are_not_cached(platform: Platform, make: Make) -> None:
    platform.script(send(500, b""), answer())
    provider = make(retries=0, clock=lambda: 0.0)
    assert provider.check_code("a", now=NOW).status == "platform_down"
    assert provider.check_code("a", now=NOW).status == "green"
    assert len(platform.seen) == 2


def test_cache_disabled(platform: Platform, make: Make) -> None:
    provider = make(cache_s=0, clock=lambda: 0.0)
    provider.check_code("a", now=NOW)
    provider.check_code("a", now=NOW)
    assert len(platform.seen) == 2


def test_cache_is_bounded(platform: Platform, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_http, "CACHE_MAX_ENTRIES", 2)
    provider = make(clock=lambda: 0.0)
    for payload in ("a", "b", "a", "c"):  # "a" was used after "b", so "b" is evicted
        provider.check_code(payload, now=NOW)
    assert len(platform.seen) == 3
    provider.check_code("a", now=NOW)
    assert len(platform.seen) == 3
    provider.check_code("b", now=NOW)
    assert len(platform.seen) == 4


def test_keep_alive_and_close(platform: Platform, make: Make) -> None:
    provider = make(cache_s=0)
    provider.check_code("a", now=NOW)
    provider.check_code("b", now=NOW)
    assert platform.seen[0].port == platform.seen[1].port
    assert not platform.disconnected.is_set()
    provider.close()
    provider.close()
    assert platform.disconnected.wait(2)


def test_dropped_keep_alive_costs_no_retry(platform: Platform, make: Make) -> None:
    platform.script(drop_after(answer()), answer())
    provider = make(cache_s=0, retries=0)
    assert provider.check_code("a", now=NOW).valid
    assert platform.disconnected.wait(2)
    assert provider.check_code("b", now=NOW).valid
    assert len(platform.seen) == 2


def test_context_manager(platform: Platform) -> None:
    with HttpHealthProvider(platform.url, timeout_s=TIMEOUT) as provider:
        assert provider.check_code("a", now=NOW).valid
    assert platform.disconnected.wait(2)


def test_payload_is_not_logged(platform: Platform, make: Make, caplog: pytest.LogCaptureFixture) -> None:
    platform.script(send(500, b"SECRET-PAYLOAD-1234"), send(200, b"SECRET-PAYLOAD-1234"))
    with caplog.at_level(logging.DEBUG, logger="kiosk"):
        make(retries=0).check_code("SECRET-PAYLOAD-1234", now=NOW)
        make(retries=0).check_idh("SECRET-PAYLOAD-1234", now=NOW)
    assert caplog.records
    assert "SECRET-PAYLOAD" not in caplog.text


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "http://", "https://user:pw@example.org/", "example.org"]
)
def test_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        HttpHealthProvider(url)


@pytest.mark.parametrize("token", [b"", b"two words", b"line\nbreak", "令牌".encode()])
def test_bad_token(token: bytes) -> None:
    with pytest.raises(ValueError, match="token"):
        HttpHealthProvider("https://example.org/", token=token)


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_tls_is_verified(tmp_path: Path) -> None:
    for platform in _serve(Platform(replies=[answer()]), tls=_self_signed(tmp_path)):
        with HttpHealthProvider(platform.url, timeout_s=TIMEOUT, retries=0) as provider:
            verdict = provider.check_code("x", now=NOW)
        assert verdict.status == "platform_down"
        assert "CERTIFICATE_VERIFY_FAILED" in verdict.detail
        assert platform.seen == []


# -- v2 (issue 15): the travel card and the platform's holder reference -----------------------------------

PLATFORM_HPR = "platform-holder-0001"


@pytest.mark.parametrize(
    ("extra", "travel", "star", "reasons"),
    [
        ({}, None, None, ()),
        ({"travel": "green"}, "green", False, ()),
        ({"travel": "green", "star": False}, "green", False, ()),
        ({"travel": "green", "star": True}, "green", True, (Reason.TRAVEL_RISK,)),
        ({"travel": "red", "star": False}, "red", False, (Reason.TRAVEL_RISK,)),
    ],
)
def test_travel_card_in_the_answer(platform: Platform, make: Make, extra: dict[str, object],
                                   travel: str | None, star: bool | None,
                                   reasons: tuple[Reason, ...]) -> None:
    platform.script(answer(**extra, hpr=PLATFORM_HPR))
    verdict = make().check_code("x", now=NOW)
    assert verdict.valid and verdict.reasons == reasons
    assert verdict.health == HealthFacts("http", "green", idh="idh-1", issued_at=int(TS) - 10,
                                         travel=travel, star=star, hpr=PLATFORM_HPR)  # type: ignore[arg-type]


@pytest.mark.parametrize("extra", [
    {"travel": "blue"}, {"travel": 1}, {"travel": "green", "star": "yes"}, {"star": True},
    {"hpr": "short"}, {"hpr": 12345678}, {"hpr": "x" * 129},
])
def test_malformed_travel_or_hpr_is_unusable(platform: Platform, make: Make,
                                             extra: dict[str, object]) -> None:
    platform.script(answer(**extra))
    verdict = make().check_code("x", now=NOW)
    assert (verdict.valid, verdict.reasons) == (False, (Reason.PLATFORM_DOWN,))


def test_against_the_stand_in_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The simulator's platform answers what the provider reads, and the office's lookup learns the hpr."""
    number = "11010519491231002X"
    site_key = tmp_path / "site.key"
    site_key.write_bytes(b"a site key for the platform tests, 32+ bytes")
    site_key.chmod(0o600)
    idh = idnumber.parse(number).person_ref(site_key.read_bytes())
    with HealthPlatform(now=lambda: NOW) as stand_in:
        stand_in.set_status(idh, "green", travel="green", star=True, hpr=PLATFORM_HPR)
        stand_in.set_code("HC-CODE-1", "yellow", travel="yellow", hpr="platform-holder-0002")
        stand_in.set_code("HC-CODE-V1", "green")
        with HttpHealthProvider(stand_in.url, timeout_s=2.0, cache_s=0) as provider:
            person = provider.check_idh(idh, now=NOW)
            assert person.valid and person.health is not None
            facts = (person.health.travel, person.health.star, person.health.hpr)
            assert facts == ("green", True, PLATFORM_HPR)
            assert person.reasons == (Reason.TRAVEL_RISK,)
            code = provider.check_code("HC-CODE-1", now=NOW)
            assert code.health is not None and code.health.hpr == "platform-holder-0002"
            assert code.reasons == (Reason.HEALTH_CODE_YELLOW, Reason.TRAVEL_RISK)
            old = provider.check_code("HC-CODE-V1", now=NOW)
            assert old.valid and old.health is not None
            assert (old.health.travel, old.health.hpr) == (None, None)
            assert provider.check_code("unknown", now=NOW).reasons == (Reason.HEALTH_CODE_INVALID,)
        assert lookup_hpr(stand_in.url, idh) == PLATFORM_HPR
        with pytest.raises(PlatformError, match="does not know"):
            lookup_hpr(stand_in.url, "0" * 64)
        assert admin.main(["register-resident", "--db", str(tmp_path / "registry.sqlite"), "--site-key",
                           str(site_key), "--id-number", number, "--platform-url", stand_in.url]) == 0
    out = capsys.readouterr().out
    assert f"hpr: {PLATFORM_HPR}" in out and number not in out
