"""Polling for the driver tests, whose devices change state on their own threads."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> bool:
    """Poll `predicate` every 2 ms for at most `timeout` seconds; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return bool(predicate())
