"""The kiosk's revocation list: the newest signed list (`CKR1.`, checkpoint/revocation.py) it was offered.

A list replaces the previous one whole. A kiosk accepts a list only when it verifies against the office
keys, names the kiosk's site and has a higher `serial` than the list it holds, so an old list replayed
on the broker cannot un-revoke a pass. The last accepted text is kept in a file (written atomically) and
verified again at start, so revocations hold across restarts before the broker is reachable.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from checkpoint.keys import KeyRing
from checkpoint.revocation import MAX_LIST_LEN, PREFIX, RevocationPayload
from checkpoint.signed import EnvelopeError, open_envelope, parse_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevocationOutcome:
    """What `RevocationList.offer` did with a list: `accepted` only when it replaced the current one."""

    accepted: bool
    detail: str


class RevocationList:
    """The site's current revocation list; thread-safe (offered from the MQTT thread, read at the gate)."""

    def __init__(self, keys: KeyRing, *, site: str, path: Path | None = None) -> None:
        self.keys = keys
        self.site = site
        self.path = path
        self._lock = threading.Lock()
        self._current: RevocationPayload | None = None
        self._text: str | None = None
        self._revoked: frozenset[str] = frozenset()
        if path is not None:
            self._load(path)

    @property
    def serial(self) -> int | None:
        """The serial of the list held, None before any."""
        current = self._current
        return None if current is None else current.serial

    @property
    def text(self) -> str | None:
        """The signed text of the list held."""
        return self._text

    def revoked(self) -> frozenset[str]:
        """The revoked pass ids (pass this bound method to `PassVerifier(revoked=...)`)."""
        return self._revoked

    def offer(self, text: str | bytes) -> RevocationOutcome:
        """Take a new signed list if it verifies, is for this site and has a higher serial; never raises."""
        try:
            payload, clean = self._check(text)
        except EnvelopeError as exc:
            log.warning("revocation list refused: %s", exc.detail)
            return RevocationOutcome(False, exc.detail)
        with self._lock:
            current = self._current
            if current is not None and payload.serial <= current.serial:
                if payload.serial == current.serial and clean == self._text:
                    return RevocationOutcome(False, f"serial {payload.serial} already held")
                detail = f"serial {payload.serial} is not above the held serial {current.serial} (replay?)"
                log.warning("revocation list refused: %s", detail)
                return RevocationOutcome(False, detail)
            self._install(payload, clean)
            detail = f"serial {payload.serial}: {len(self._revoked)} revoked"
            if self.path is not None:
                try:
                    _write_atomic(self.path, clean + "\n")
                except OSError as exc:
                    log.error("revocation list %s not saved: %s", self.path, exc)
                    detail += f"; not saved: {exc.strerror}"
        log.info("revocation list accepted: %s", detail)
        return RevocationOutcome(True, detail)

    def _check(self, text: str | bytes) -> tuple[RevocationPayload, str]:
        try:
            clean = (text.decode("ascii") if isinstance(text, bytes) else text).strip()
        except (UnicodeDecodeError, AttributeError) as exc:
            raise EnvelopeError("not ASCII text") from exc
        try:
            payload = parse_payload(RevocationPayload, open_envelope(clean, PREFIX, self.keys,
                                                                     max_len=MAX_LIST_LEN))
        except EnvelopeError:
            raise
        except Exception as exc:  # an MQTT message must never stop the kiosk
            log.exception("revocation list check failed unexpectedly")
            raise EnvelopeError(f"internal error: {type(exc).__name__}") from exc
        if payload.site != self.site:
            raise EnvelopeError(f"list for site {payload.site!r}, this is {self.site!r}")
        return payload, clean

    def _install(self, payload: RevocationPayload, text: str) -> None:
        self._current = payload
        self._text = text
        self._revoked = frozenset(payload.revoked)

    def _load(self, path: Path) -> None:
        try:
            saved = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("revocation list %s unreadable: %s", path, exc)
            return
        try:
            payload, clean = self._check(saved)
        except EnvelopeError as exc:
            log.error("saved revocation list %s ignored: %s", path, exc.detail)
            return
        self._install(payload, clean)
        log.info("revocation list loaded from %s: serial %d, %d revoked", path, payload.serial,
                 len(self._revoked))


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a crash leaves either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
