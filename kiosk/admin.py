"""The `kiosk-admin` command for the community office: signing keys (passes arrive with issue 3)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import __version__


def keygen(private_path: Path, *, force: bool = False) -> Path:
    """Write a new Ed25519 private key (PEM, mode 0600) and its public key beside it (.pub)."""
    public_path = private_path.with_name(private_path.name + ".pub")
    if not force and (private_path.exists() or public_path.exists()):
        raise FileExistsError(f"{private_path} exists; pass --force to replace it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    private_path.unlink(missing_ok=True)  # a fresh inode gets mode 0600 from the start
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return public_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-admin", description="checkpoint-kiosk office tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("keygen", help="make an Ed25519 signing key (private 0600, public .pub)")
    p.add_argument("path", type=Path, help="private key file to write")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "keygen":
        try:
            public = keygen(args.path, force=args.force)
        except (FileExistsError, OSError) as exc:
            print(f"kiosk-admin keygen: {exc}", file=sys.stderr)
            return 1
        print(f"private key {args.path} (mode 0600), public key {public}")
        return 0
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
