"""Which commands the kiosk obeys: sent live (not retained), well-formed, small and fresh."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from kiosk.entry import Command

MAX_COMMAND = 4096


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
