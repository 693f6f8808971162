"""Simulation scenarios (a contract): TOML with a start time, policy overrides and people."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic import Strict as PydanticStrict

from checkpoint.configtypes import Strict
from checkpoint.reasons import Colour, HealthStatus, Reason, TravelStatus
from checkpoint.tomlconfig import ConfigError, _describe, read_toml_text, validate_toml
from kiosk.config import PolicyConfig


class PassSpec(Strict):
    cat: Colour = "green"
    hh: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    valid_from_s: float = -86_400.0  # relative to the person's arrival
    valid_for_s: float = Field(30 * 86_400.0, gt=0)
    revoked: bool = False
    forged: bool = False


class HealthSpec(Strict):
    status: HealthStatus = "green"
    age_s: float = Field(20.0, ge=0)  # how old the code is when shown; over max_age_s it is a screenshot
    forged: bool = False
    travel: TravelStatus | None = None  # the travel card: a v2 token (and a v2 pass); None, a v1 token
    star: bool = False  # the travel card's star (itinerary touched a risk city)
    borrowed: bool = False  # the token is signed for another holder (someone else's phone)

    @model_validator(mode="after")
    def _star_needs_travel(self) -> HealthSpec:
        if self.star and self.travel is None:
            raise ValueError("star needs travel (a v2 token carries the travel card)")
        return self


class Person(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    at_s: float = Field(ge=0)
    codes: list[str] = Field(default_factory=list)
    pass_: PassSpec | None = Field(None, alias="pass")
    health: HealthSpec | None = None
    id_number: str | None = None
    registered: bool = True
    household: str | None = None  # the registry's household for an ID number
    together: bool = False
    skin_c: float = Field(34.5, ge=-20, le=60)
    ambient_c: float = Field(22.0, ge=-30, le=60)
    staff: Literal["hold", "press"] | None = None  # what staff do if the kiosk asks for them
    expect: Literal["allow", "deny", "attention"] | None = None
    expect_reasons: list[Annotated[Reason, PydanticStrict(False)]] | None = None  # TOML gives strings
    label: str = ""

    @model_validator(mode="after")
    def _shows_something(self) -> Person:
        if not (self.codes or self.pass_ or self.health or self.id_number):
            raise ValueError("a person shows at least one of codes, pass, health or id_number")
        return self


class Scenario(Strict):
    start: datetime
    policy: dict[str, Any] = Field(default_factory=dict)
    person: list[Person] = Field(min_length=1)

    @model_validator(mode="after")
    def _aware_and_ordered(self) -> Scenario:
        if self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-11-23T07:30:00+08:00")
        times = [p.at_s for p in self.person]
        if times != sorted(times):
            raise ValueError("people must be listed in order of at_s")
        return self

    def policy_over(self, base: PolicyConfig) -> PolicyConfig:
        """The config's policy with this scenario's overrides applied (validated like config)."""
        merged = _merge(base.model_dump(), self.policy)
        return PolicyConfig.model_validate(merged)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and validate a scenario; ConfigError names the key and line."""
    scenario = validate_toml(Scenario, text, source=source)
    try:
        scenario.policy_over(PolicyConfig())
    except ValidationError as exc:
        errors = [{**e, "loc": ("policy", *e["loc"])} for e in exc.errors()]
        raise ConfigError(source, [_describe(e, text) for e in errors]) from None
    return scenario


def load_scenario(path: Path | None) -> Scenario:
    """A scenario file, or the built-in one."""
    if path is None:
        text = resources.files("kiosk.sim").joinpath("data/scenario.toml").read_text(encoding="utf-8")
        return parse_scenario(text, source="<built-in scenario>")
    return parse_scenario(read_toml_text(path), source=str(path))
