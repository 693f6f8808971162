"""Password hashes: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
_HASHER = PasswordHasher()
# Checked when the user does not exist, so that an unknown name costs as long as a wrong password.
_DECOY = _HASHER.hash("not a password anyone has")


class WeakPassword(ValueError):
    """A password too short to set."""


def hash_password(password: str) -> str:
    """The argon2id hash of a new password (refused if shorter than MIN_LENGTH characters)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (no such user) it takes as long and is False."""
    try:
        return _HASHER.verify(password_hash or _DECOY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
