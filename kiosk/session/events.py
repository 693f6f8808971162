"""Events into the gate flow, the recorder it writes to, and what a session's outcome looks like."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from checkpoint.entry import ResolvedBy
from checkpoint.reasons import Reason
from drivers.leds import FaultClass
from kiosk.scanner import Code

Override = Literal["staff", "remote"] | None


@dataclass(frozen=True)
class Motion:
    """The PIR saw someone."""


@dataclass(frozen=True)
class CodesSeen:
    """New (debounced) codes from one frame, and what decoding that frame cost."""

    codes: tuple[Code, ...]
    decode_ms: float


@dataclass(frozen=True)
class StaffHold:
    """Staff held the button: open the gate."""


@dataclass(frozen=True)
class StaffAck:
    """Staff pressed the button briefly: the attention is dealt with, keep the gate shut."""


@dataclass(frozen=True)
class RemoteOpen:
    """The office opened the gate over MQTT: for the open attention `entry_id`, or a plain manual opening."""

    by: str
    entry_id: str | None = None


@dataclass(frozen=True)
class DeviceState:
    """A device failed (`ok` False) or came back."""

    kind: FaultClass
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Reload:
    """New policy and credential settings, applied between sessions by the gate thread."""

    config: Any  # KioskConfig; Any keeps this module free of the config import
    verifier: Any  # CredentialVerifier


Event = Motion | CodesSeen | StaffHold | StaffAck | RemoteOpen | DeviceState | Reload


class Recorder(Protocol):
    """Where entries go: durably committed before the gate moves."""

    def record(self, fields: dict[str, Any], *, attention: bool = False) -> str: ...

    def resolve(self, entry_id: str, *, by: ResolvedBy, opened: bool, operator: str | None,
                ts: datetime) -> None: ...

    def open_attentions(self) -> list[str]: ...

    def household_allowed_since(self, household: str, since: datetime) -> int: ...

    def alert(self, kind: str, detail: str, entry_id: str | None = None) -> None: ...


@dataclass(frozen=True)
class Result:
    """What happened to one session (`session` numbers them; None for a manual opening)."""

    decision: str
    reasons: tuple[Reason, ...]
    override: Override
    entry_id: str | None
    body_c: float | None
    session: int | None = None


@dataclass(frozen=True)
class Resolved:
    """How an open attention ended."""

    entry_id: str
    by: ResolvedBy
    opened: bool
