"""The MQTT payloads of DESIGN §5: entry, status, alert and command (a contract; topics in topics.py).

The kiosk builds these models and the collector validates what it receives with the same models, so
`Entry.model_validate_json(raw)` is the one place that defines a valid entry. JSON uses the contract's
keys (`schema`, `pass`); in Python the fields are `schema_` and `pass_`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from checkpoint.configtypes import Name
from checkpoint.passes import MaskedName
from checkpoint.reasons import Colour, HealthScheme, HealthStatus, Reason, TravelStatus
from checkpoint.signed import IdHash, SafeId

ENTRY_SCHEMA = "checkpoint.entry/1"
MAX_PAYLOAD = 16_384  # far above any real payload; the collector refuses larger ones unread
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_UUID7 = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def _parse_ts(value: object) -> datetime:
    if isinstance(value, str):
        if not _TS.fullmatch(value):
            raise ValueError("an ISO 8601 UTC time with milliseconds, e.g. '2026-03-19T07:02:11.123Z'")
        return datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    raise ValueError("an ISO 8601 UTC time string")


def format_ts(value: datetime) -> str:
    """'2026-03-19T07:02:11.123Z': UTC, milliseconds, Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond."""
    return _parse_ts(datetime.now(UTC))


Timestamp = Annotated[datetime, BeforeValidator(_parse_ts), PlainSerializer(format_ts, return_type=str)]
Uuid7 = Annotated[str, StringConstraints(pattern=_UUID7)]
Text = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
Millis = Annotated[float, Strict(), Field(ge=0, le=86_400_000, allow_inf_nan=False)]
DeviceState = Literal["ok", "fault", "absent", "unknown"]
AlertKind = Literal["fever", "fault", "forgery"]


def _unique(reasons: list[Reason]) -> list[Reason]:
    if len(set(reasons)) != len(reasons):
        raise ValueError("each reason code at most once")
    return reasons


class Payload(BaseModel):
    """Base of every wire model: strict keys, immutable, contract keys by alias."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    def to_json(self) -> bytes:
        """The compact JSON payload to publish."""
        return self.model_dump_json().encode("utf-8")


class Temperature(Payload):
    """The measured temperature: skin, compensated body and ambient, from `samples` readings."""

    skin_c: Annotated[float, Strict()] = Field(ge=-10.0, le=60.0, allow_inf_nan=False)
    body_c: Annotated[float, Strict()] = Field(ge=-10.0, le=60.0, allow_inf_nan=False)
    ambient_c: Annotated[float, Strict()] = Field(ge=-50.0, le=70.0, allow_inf_nan=False)
    samples: StrictInt = Field(ge=1, le=100)


class Health(Payload):
    """The health code shown: its scheme and colour, and the travel card's colour and star when the code
    carried one (HCT1 v2, the platform); never the itinerary. Absent travel fields: no travel card."""

    scheme: HealthScheme
    status: HealthStatus | None  # None: a code was shown but could not be read
    travel: TravelStatus | None = Field(None, exclude_if=lambda value: value is None)
    star: StrictBool | None = Field(None, exclude_if=lambda value: value is None)

    @model_validator(mode="after")
    def _travel_with_star(self) -> Health:
        if (self.travel is None) != (self.star is None):
            raise ValueError("travel and star come together")
        return self


class PassInfo(Payload):
    """The pass shown: id, colour and household."""

    pid: SafeId
    cat: Colour
    hh: SafeId | None


class Person(Payload):
    """A person identified by ID number: keyed hash and masked number, never the number.

    `masked` is a masked ID number (`3701**************`) or a pass holder's masked name; it shows at most
    four characters of an ID number. Refused: more than four digits, or an 18-character form of digits,
    `X` and `*` with more than four characters that are not `*`.
    """

    @staticmethod
    def _shows_at_most_four(masked: str) -> str:
        shown = sum(char.isdecimal() for char in masked)
        if len(masked) == 18 and set(masked) <= set("0123456789Xx*"):
            shown = len(masked) - masked.count("*")
        if shown > 4:
            raise ValueError(f"shows {shown} characters of an ID number; a display form shows at most 4")
        return masked

    ref: IdHash
    masked: Annotated[MaskedName, StringConstraints(min_length=1), AfterValidator(_shows_at_most_four)]


class Timing(Payload):
    """Milliseconds spent decoding, deciding, and in the whole session."""

    decode: Millis
    decide: Millis
    session: Millis


class EntryDraft(Payload):
    """What the flow knows about one entry; the outbox adds schema, id, site, kiosk and seq."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    ts: Timestamp = Field(default_factory=utc_now)
    direction: Literal["in", "out"]
    decision: Literal["allow", "deny", "attention"]
    reasons: Annotated[list[Reason], Field(max_length=len(Reason)), AfterValidator(_unique)] = []
    override: Literal["staff", "remote"] | None = None
    temperature: Temperature | None = None
    health: Health | None = None
    pass_: PassInfo | None = Field(default=None, alias="pass")
    person: Person | None = None
    timing_ms: Timing
    clock_unsynced: StrictBool = False  # made before the kiosk's clock was synchronised: `ts` may be wrong

    @property
    def passed(self) -> bool:
        """Whether the person went through: allowed, or let through by staff or remotely."""
        return self.decision == "allow" or self.override is not None


class Entry(EntryDraft):
    """One entry as published on `…/entry` (`schema: checkpoint.entry/1`); `Outbox.append` makes them."""

    model_config = ConfigDict(validate_by_name=False, validate_by_alias=True)

    schema_: Literal["checkpoint.entry/1"] = Field(alias="schema")
    id: Uuid7
    site: Name
    kiosk: Name
    seq: StrictInt = Field(ge=1, le=2**63 - 1)

    def to_json(self) -> bytes:
        """The payload with the contract's key order (schema, id, site, kiosk, seq, ts, …)."""
        data = self.model_dump(mode="json")
        head = {key: data.pop(key) for key in ("schema", "id", "site", "kiosk", "seq")}
        return _dumps({**head, **data})


class OutboxState(Payload):
    """The outbox as the status shows it: undelivered entries, the oldest one's age, refusals."""

    backlog: StrictInt = Field(ge=0)
    oldest_s: Annotated[float, Strict()] | None = Field(default=None, ge=0, allow_inf_nan=False)
    refused: StrictInt = Field(default=0, ge=0)  # undelivered rows whose last publish the broker refused
    alerts: StrictInt = Field(default=0, ge=0)  # undelivered alerts
    resolutions: StrictInt = Field(default=0, ge=0)  # undelivered resolutions of attentions
    full: StrictBool = False  # undelivered rows reached storage.outbox_max_entries (none is ever dropped)


class Devices(Payload):
    """What the status provider reports about the hardware."""

    camera: DeviceState
    thermometer: DeviceState


class Status(Payload):
    """The retained `…/status`; the last will carries only `{"state": "offline"}`."""

    state: Literal["online", "offline"]
    ts: Timestamp | None = None
    camera: DeviceState | None = None
    thermometer: DeviceState | None = None
    outbox: OutboxState | None = None
    version: Annotated[str, StringConstraints(max_length=32, pattern=r"^[A-Za-z0-9.+_-]*$")] | None = None

    def to_json(self) -> bytes:
        """Compact JSON without the fields that are not known (the will has only `state`)."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class Alert(Payload):
    """An `…/alert`; `id` lets the collector store a redelivered alert once."""

    kind: AlertKind
    ts: Timestamp
    entry_id: Uuid7 | None = None
    detail: Text
    id: Uuid7 | None = None

    def to_json(self) -> bytes:
        """Compact JSON, `entry_id` left out when there is none."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


RESOLUTION_SCHEMA: Literal["checkpoint.resolution/1"] = "checkpoint.resolution/1"
ResolvedBy = Literal["staff", "remote", "ack", "timeout"]


class Resolution(Payload):
    """How an attention ended, on `…/resolution`: a second durable record naming the attention entry.

    `by`: staff held the button (`staff`, the gate opened), the office sent a signed open (`remote`),
    staff acknowledged it with the gate shut (`ack`), or nobody came within `attention_timeout_s`
    (`timeout`). `operator` names the signer of a remote open. `entry_id` is the idempotency key: an
    attention is resolved once.
    """

    schema_: Literal["checkpoint.resolution/1"] = Field(default=RESOLUTION_SCHEMA, alias="schema")
    entry_id: Uuid7
    by: ResolvedBy
    ts: Timestamp
    opened: StrictBool
    operator: Annotated[str, StringConstraints(min_length=1, max_length=64,
                                               pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None

    def to_json(self) -> bytes:
        """Compact JSON, `operator` left out when there is none."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class Command(Payload):
    """A command on `…/cmd/{open,reload,ping}`."""

    by: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
    ts: Timestamp


OFFLINE = Status(state="offline")


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
