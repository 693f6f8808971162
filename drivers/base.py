"""What every device driver shares: context-manager use, an idempotent close, and safe user callbacks."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

from drivers.errors import DeviceError

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class Device(ABC):
    """A physical device: `with` closes it, `closed` says so, and use after close raises `error`."""

    error: ClassVar[type[DeviceError]] = DeviceError
    device: str
    _closed: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call again."""

    def _check_open(self) -> None:
        if self._closed:
            raise self.error(self.device, "device is closed")


def call_safely(callback: Callback | None, device: str, name: str) -> None:
    """Run a user callback; an exception is logged, not raised, so gpiozero's threads keep running."""
    if callback is None:
        return
    try:
        callback()
    except Exception:
        log.exception("%s: %s callback failed", device, name)
