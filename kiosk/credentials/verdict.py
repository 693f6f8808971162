"""Typed verdicts: what verifying one scanned payload found, with contract reason codes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from checkpoint.reasons import Colour, HealthScheme, HealthStatus, Reason, TravelStatus

Kind = Literal["pass", "health_token", "dcc", "health_http", "id_number", "unknown"]


@dataclass(frozen=True)
class PassFacts:
    """A verified pass: who it admits and under which colour."""

    pid: str
    cat: Colour
    kid: str
    hh: str | None
    name: str
    idh: str
    nbf: int
    exp: int
    hpr: str | None = None  # v2 passes: the health platform's reference for the holder


@dataclass(frozen=True)
class HealthFacts:
    """A health code's scheme and colour; `status` is None when the code could not be read at all.

    `travel` is the travel card's colour and `star` its risk-city star, both None when the code carries no
    travel card (v1 tokens, DCCs); `hpr` is the platform's reference for the code's holder.
    """

    scheme: HealthScheme
    status: HealthStatus | None
    idh: str | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    travel: TravelStatus | None = None
    star: bool | None = None
    hpr: str | None = None


@dataclass(frozen=True)
class PersonFacts:
    """A person identified by ID number: a keyed hash and a masked form, never the number."""

    ref: str
    masked: str
    registered: bool
    household: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one payload.

    `valid` says the credential is authentic, well formed and within its validity; `reasons` lists every
    contract reason code it implies (a genuine red health code is valid with `health_code_red`); the
    policy decides what they mean for the gate. `detail` is for logs and staff, never for residents.
    """

    kind: Kind
    valid: bool
    status: str
    reasons: tuple[Reason, ...] = ()
    detail: str = ""
    pass_: PassFacts | None = None
    health: HealthFacts | None = None
    person: PersonFacts | None = None

    def to_json(self) -> dict[str, Any]:
        """The `kiosk verify --json` object (a contract)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "valid": self.valid,
            "status": self.status,
            "reasons": [str(r) for r in self.reasons],
            "detail": self.detail,
        }
        if self.pass_ is not None:
            out["pass"] = asdict(self.pass_)
        if self.health is not None:
            out["health"] = asdict(self.health)
        if self.person is not None:
            out["person"] = asdict(self.person)
        return out


def travel_reasons(travel: TravelStatus | None, star: bool | None) -> tuple[Reason, ...]:
    """What a travel card implies by itself: `travel_risk` unless green and unstarred (the policy's
    `travel_ok` and `travel_star` decide what that means at the gate)."""
    return (Reason.TRAVEL_RISK,) if travel is not None and (travel != "green" or star) else ()


def unknown(detail: str) -> Verdict:
    """A payload that is none of the credentials we know."""
    return Verdict("unknown", valid=False, status="unknown", reasons=(Reason.UNKNOWN_CODE,), detail=detail)
