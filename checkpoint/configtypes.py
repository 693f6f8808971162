"""Config field types both deployables share: strict sections, names, time zones, lists without repeats,
and secrets read from a file or a systemd credential."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic import Strict as StrictType

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # safe inside an MQTT topic
MIN_KEY_BYTES = 32


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


def secret_path(key: str, file: Path | None, credential: str | None) -> Path | None:
    """Where the secret `key` is: `file`, or the systemd credential `credential`; None when neither is set."""
    if file is not None:
        return file
    if credential is None:
        return None
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError(f"{key}: credential {credential!r} but $CREDENTIALS_DIRECTORY is unset")
    return Path(directory) / credential


def read_secret(key: str, file: Path | None, credential: str | None) -> bytes | None:
    """A text secret (a password, a token, a DSN) from a file or from `$CREDENTIALS_DIRECTORY`, without
    surrounding whitespace such as a trailing newline; None when neither is set."""
    path = secret_path(key, file, credential)
    if path is None:
        return None
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    if not data:
        raise SecretError(f"{key}: {path} is empty")
    return data


def read_key(key: str, file: Path | None, credential: str | None) -> bytes | None:
    """A binary key (the site HMAC key) from a file or from `$CREDENTIALS_DIRECTORY`, byte for byte and at
    least MIN_KEY_BYTES long; a key file must be a regular file only its owner can use. None when neither is
    set."""
    path = secret_path(key, file, credential)
    if path is None:
        return None
    expected = f"expected at least {MIN_KEY_BYTES} random bytes (head -c {MIN_KEY_BYTES} /dev/urandom)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the start
        with os.fdopen(fd, "rb") as opened:
            mode = os.fstat(opened.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise SecretError(f"{key}: {path} is not a regular file; {expected}")
            if file is not None and mode & 0o077:
                raise SecretError(
                    f"{key}: {path} is open to group or others (mode {stat.S_IMODE(mode):04o}); expected a "
                    f"file only its owner can read, mode 0600 or 0400 (chmod 600 {path})")
            data = opened.read()
    except OSError as exc:
        raise SecretError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    if len(data) < MIN_KEY_BYTES:
        size = f"{len(data)} byte" + ("" if len(data) == 1 else "s")
        raise SecretError(f"{key}: {path} holds {size}; {expected}")
    return data


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are immutable and types are strict: a quoted
    number or boolean is an error, and so is 1 for true or 2.0 for an integer. An integer still fills a float
    field, and a string a path or an enum field."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# TOML has no path type: a path comes as a string, which this one field type takes.
ConfigPath = Annotated[Path, StrictType(False)]
