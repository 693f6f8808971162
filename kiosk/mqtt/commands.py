"""Which commands the kiosk obeys: signed (`CKC1`) by a trusted operator for this kiosk, sent live, fresh,
and only once (kiosk/mqtt/nonces.py says why a replay is refused even without a synced clock)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from checkpoint.commands import PREFIX, CommandPayload
from checkpoint.keys import KeyRing
from checkpoint.signed import read_signed, unix_time
from kiosk.mqtt.nonces import NonceStore

MAX_COMMAND = 4096
CLOCK_SKEW_S = 30

log = logging.getLogger(__name__)
CommandHandler = Callable[[CommandPayload], None]


class CommandRefused(ValueError):
    """A command the kiosk ignores, and why."""


@dataclass(frozen=True)
class CommandCheck:
    """What a command is checked against: the operators' keys, this kiosk, the used nonces and the clock."""

    keys: KeyRing
    site: str
    kiosk: str
    nonces: NonceStore
    now: Callable[[], datetime]
    synced: Callable[[], bool]


def vet_command(name: str, payload: bytes, *, retained: bool, check: CommandCheck) -> CommandPayload:
    """The verified command, or CommandRefused saying why; a command that passes has used up its nonce."""
    shown = repr(name[:64])
    if retained:  # a retained `open` would open the gate for whoever connects next
        raise CommandRefused(f"ignoring a retained command {shown}")
    if len(payload) > MAX_COMMAND:
        raise CommandRefused(f"ignoring command {shown}: {len(payload)} bytes")
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        raise CommandRefused(f"ignoring command {shown}: not ASCII") from None
    command = read_signed(CommandPayload, text, PREFIX, check.keys)
    if isinstance(command, str):
        raise CommandRefused(f"ignoring command {shown}: {command}")
    who = f"by {command.op} (key {command.kid})"
    if (command.site, command.kiosk) != (check.site, check.kiosk):
        raise CommandRefused(f"ignoring command {shown} {who}: for {command.site}/{command.kiosk}")
    if command.cmd != name:
        raise CommandRefused(f"ignoring command {shown} {who}: signed as {command.cmd!r}")
    floor = check.nonces.advance(unix_time(check.now()))
    if command.exp < floor:
        raise CommandRefused(f"ignoring command {shown} {who}: expired {floor - command.exp:.0f} s ago")
    if check.synced() and command.iat > floor + CLOCK_SKEW_S:
        raise CommandRefused(f"ignoring command {shown} {who}: issued {command.iat - floor:.0f} s ahead")
    if not check.nonces.claim(command.nonce, command.exp):
        raise CommandRefused(f"ignoring command {shown} {who}: a replay (nonce already used)")
    return command


def dispatch(name: str, payload: bytes, *, retained: bool, handlers: Mapping[str, CommandHandler],
             check: CommandCheck | None) -> None:
    """Vet a command and call its handler; a refused one is logged and not run."""
    if check is None:
        log.warning("mqtt: ignoring command %r: no operator keys configured ([commands] keys_dir)", name[:64])
        return
    try:
        command = vet_command(name, payload, retained=retained, check=check)
    except CommandRefused as exc:
        log.warning("mqtt: %s", exc)
        return
    handler = handlers.get(name)
    if handler is None:
        return
    log.info("mqtt: command %s by %s (key %s)", name, command.op, command.kid)
    handler(command)
