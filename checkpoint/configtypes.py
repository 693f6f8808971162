"""Config field types both deployables share: strict sections, names, time zones, lists without repeats,
and secrets read from a file or a systemd credential."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # safe inside an MQTT topic


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone such as 'Asia/Shanghai'") from None
    return value


def _check_unique(value: list[Any]) -> list[Any]:
    if len(set(value)) != len(value):
        raise ValueError("each entry at most once")
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
Unique = AfterValidator(_check_unique)  # Annotated[list[...], Unique]: no entry twice


def _check_credential_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise ValueError("a systemd credential name (letters, digits, '_', '-', '.')")
    return value


CredentialName = Annotated[str | None, AfterValidator(_check_credential_name)]


class SecretError(Exception):
    """A configured secret could not be read."""


def read_secret(key: str, file: Path | None, credential: str | None) -> bytes | None:
    """Read a secret from a file or from `$CREDENTIALS_DIRECTORY`; None when neither is set."""
    if file is not None:
        path = file
    elif credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(f"{key}: credential {credential!r} but $CREDENTIALS_DIRECTORY is unset")
        path = Path(directory) / credential
    else:
        return None
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    if not data:
        raise SecretError(f"{key}: {path} is empty")
    return data


class Strict(BaseModel):
    """Base for every section: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
