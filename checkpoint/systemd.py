"""What both services need of systemd: readiness and watchdog notifications, and journald-friendly logs."""

from __future__ import annotations

import logging
import os
import socket
import sys

log = logging.getLogger(__name__)

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def sd_notify(message: str) -> None:
    """Tell systemd about our state (READY=1, WATCHDOG=1, STOPPING=1); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", message, exc)


def _journal_priority(record: logging.LogRecord) -> bool:
    record.priority = f"<{_PRIORITY.get(record.levelno, 6)}>"
    return True


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM) with `<N>` priority prefixes and no timestamps.

    journald stamps the time itself and reads the `<N>` prefix as the syslog priority. Called again, it
    only sets the level.
    """
    root = logging.getLogger()
    if root.handlers:
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(priority)s%(name)s: %(message)s"))
        handler.addFilter(_journal_priority)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
