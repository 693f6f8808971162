"""The MQTT topics of DESIGN §5 (a contract): every kiosk topic is under `checkpoint/v1/{site}/{kiosk}`."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

TOPIC_ROOT = "checkpoint/v1"
SHARED_GROUP = "collectors"


class Topics(NamedTuple):
    """The topics of one kiosk (`checkpoint/v1/{site}/{kiosk}/…`)."""

    prefix: str
    entry: str
    status: str
    alert: str
    cmd: str  # commands are `{cmd}/{name}`
    resolution: str

    @property
    def cmd_filter(self) -> str:
        """The subscription to this kiosk's commands."""
        return f"{self.cmd}/#"


def _check_name(value: str, what: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValueError(f"{what} {value!r}: letters, digits, '_' and '-' only (1-64)")
    return value


def topics(site: str, kiosk: str) -> Topics:
    """The entry, status, alert, command and resolution topics of a kiosk."""
    prefix = f"{TOPIC_ROOT}/{_check_name(site, 'site')}/{_check_name(kiosk, 'kiosk')}"
    return Topics(prefix, f"{prefix}/entry", f"{prefix}/status", f"{prefix}/alert", f"{prefix}/cmd",
                  f"{prefix}/resolution")


def revocations_topic(site: str) -> str:
    """The retained, signed revocation list of a site."""
    return f"{TOPIC_ROOT}/{_check_name(site, 'site')}/revocations"


def report_topic(site: str) -> str:
    """Where collectors publish a site's reports."""
    return f"{TOPIC_ROOT}/{_check_name(site, 'site')}/report"


KioskKind = Literal["entry", "status", "alert", "resolution"]


def shared_subscription(kind: KioskKind, group: str = SHARED_GROUP) -> str:
    """The collectors' MQTT v5 shared subscription to every kiosk's `kind` messages."""
    return f"$share/{group}/{TOPIC_ROOT}/+/+/{kind}"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """(site, kiosk, kind) of a kiosk topic such as `checkpoint/v1/s1/gate-north/entry`; None otherwise."""
    match = re.fullmatch(
        r"checkpoint/v1/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})/(entry|status|alert|resolution)", topic)
    return (match[1], match[2], match[3]) if match else None
