"""Ed25519 key rings by `kid`, and the key files `kiosk-admin` reads and writes.

A key's `kid` is the stem of its `<kid>.pub` file in the kiosk's key directory. `kiosk-admin` names keys by
default with `kid_for(public_key)` (16 hex digits of SHA-256 over the raw public key), both in the
envelopes it signs and in the files `export-pubkeys` writes, so the two always agree; an operator who
names a file otherwise must sign with the same `--kid`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

KID_PATTERN = r"[A-Za-z0-9_-]{1,32}"
MAX_KEY_FILE = 64 * 1024
_KID = re.compile(KID_PATTERN)


class KeyFileError(Exception):
    """A key file that cannot be read or is not the expected kind of key."""


def kid_for(public_key: Ed25519PublicKey) -> str:
    """The default key id: the first 8 bytes of SHA-256 over the raw 32-byte public key, as hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def check_kid(kid: str) -> str:
    """Return `kid` if it is 1-32 letters, digits, '_' or '-'; raise ValueError otherwise."""
    if not _KID.fullmatch(kid):
        raise ValueError(f"kid {kid!r}: expected 1-32 letters, digits, '_' or '-'")
    return kid


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """PEM SubjectPublicKeyInfo, the format of `<kid>.pub` files."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(serialization.Encoding.PEM, spki)


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE} bytes, not a key")
    return data


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM (PKCS#8) Ed25519 private key, as written by `kiosk-admin keygen`."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path, *, allow_private: bool = False) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key; with `allow_private`, derive it from a private key file too."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        if not allow_private:
            raise KeyFileError(f"{path}: holds a private key; only public keys belong here")
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


class KeyRing(Mapping[str, Ed25519PublicKey]):
    """Trusted Ed25519 public keys by `kid` (immutable)."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for kid, key in (keys or {}).items():
            if not isinstance(key, Ed25519PublicKey):
                raise TypeError(f"kid {kid!r}: not an Ed25519 public key")
            self._keys[check_kid(kid)] = key

    @classmethod
    def of(cls, *public_keys: Ed25519PublicKey) -> KeyRing:
        """A ring of keys named by `kid_for`."""
        return cls({kid_for(key): key for key in public_keys})

    @classmethod
    def from_dir(cls, path: Path) -> KeyRing:
        """Load every `<kid>.pub` in `path`; bad files are logged and skipped, a missing directory raises."""
        if not path.is_dir():
            raise FileNotFoundError(f"key directory {path} does not exist")
        keys: dict[str, Ed25519PublicKey] = {}
        for file in sorted(path.glob("*.pub")):
            if not _KID.fullmatch(file.stem):
                log.warning("key file %s skipped: the name must be <kid>.pub, kid %s", file, KID_PATTERN)
                continue
            try:
                keys[file.stem] = load_public_key(file)
            except KeyFileError as exc:
                log.warning("key file skipped: %s", exc)
        if not keys:
            log.warning("key directory %s holds no usable <kid>.pub keys", path)
        return cls(keys)

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({sorted(self._keys)!r})"
