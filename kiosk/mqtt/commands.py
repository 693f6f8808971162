"""Which commands the kiosk obeys: sent live (not retained), well-formed, small and fresh."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from checkpoint.entry import Command

MAX_COMMAND = 4096

log = logging.getLogger(__name__)
CommandHandler = Callable[[dict[str, Any]], None]


class CommandRefused(ValueError):
    """A command the kiosk ignores, and why."""


def vet_command(name: str, payload: bytes, *, retained: bool, now: datetime,
                max_age_s: float | None) -> Command:
    """The command, or CommandRefused; `max_age_s=None` skips the age check (the clock is not synced)."""
    shown = repr(name[:64])
    if retained:  # a retained `open` would open the gate for whoever connects next
        raise CommandRefused(f"ignoring a retained command {shown}")
    try:
        if len(payload) > MAX_COMMAND:
            raise ValueError(f"{len(payload)} bytes")
        command = Command.model_validate_json(payload)
    except (ValidationError, ValueError) as exc:
        raise CommandRefused(f"ignoring malformed command {shown}: {str(exc).splitlines()[0]}") from None
    age_s = now.timestamp() - command.ts.timestamp()
    if max_age_s is not None and abs(age_s) > max_age_s:
        raise CommandRefused(f"ignoring command {shown} by {command.by}: {age_s:.0f} s old")
    return command


def dispatch(name: str, payload: bytes, *, retained: bool, handlers: Mapping[str, CommandHandler],
             now: datetime, max_age_s: float | None, quiet: Collection[str] = ()) -> None:
    """Vet a command and call its handler; a refused or unknown one (unless `quiet`) is logged, not run."""
    try:
        command = vet_command(name, payload, retained=retained, now=now, max_age_s=max_age_s)
    except CommandRefused as exc:
        log.warning("mqtt: %s", exc)
        return
    handler = handlers.get(name)
    if handler is None:
        if name not in quiet:
            log.warning("mqtt: ignoring unknown command %r by %s", name[:64], command.by)
        return
    log.info("mqtt: command %s by %s", name, command.by)
    handler(command.model_dump(mode="json"))
