"""Reason codes and the colours of passes and health codes (DESIGN §4, a contract: names never change)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Colour = Literal["green", "blue", "red", "pink"]
HealthStatus = Literal["green", "yellow", "red"]
HealthScheme = Literal["token", "dcc", "http"]
TravelStatus = Literal["green", "yellow", "red"]  # the travel card's (行程卡) colour
COLOURS: tuple[Colour, ...] = ("green", "blue", "red", "pink")
STATUSES: tuple[HealthStatus, ...] = ("green", "yellow", "red")
TRAVEL_STATUSES: tuple[TravelStatus, ...] = ("green", "yellow", "red")


class Reason(StrEnum):
    """The reason codes of DESIGN §4 (a contract: names never change)."""

    FEVER = "fever"
    NO_HEALTH_CODE = "no_health_code"
    HEALTH_CODE_RED = "health_code_red"
    HEALTH_CODE_YELLOW = "health_code_yellow"
    HEALTH_CODE_EXPIRED = "health_code_expired"
    HEALTH_CODE_INVALID = "health_code_invalid"
    NO_PASS = "no_pass"
    PASS_INVALID = "pass_invalid"
    PASS_EXPIRED = "pass_expired"
    PASS_NOT_YET_VALID = "pass_not_yet_valid"
    PASS_REVOKED = "pass_revoked"
    OUTSIDE_HOURS = "outside_hours"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNKNOWN_CODE = "unknown_code"
    SENSOR_FAULT = "sensor_fault"
    PLATFORM_DOWN = "platform_down"
    TRAVEL_RISK = "travel_risk"
    NO_TRAVEL_CODE = "no_travel_code"
    HEALTH_CODE_NOT_HOLDER = "health_code_not_holder"
