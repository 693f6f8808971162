"""`kiosk-admin broker-user`: add or update a broker user in mosquitto's password file and ACL.

Usernames (see config/mosquitto/README.md): a kiosk is `{site}/{kiosk}`, so the ACL's `pattern` lines
(`checkpoint/v1/%u/entry`, …) give every kiosk exactly its own prefix with one line each. Collector and
office names never contain `/`, so no pattern can expand to a kiosk's topics for them. What a pattern
cannot say (a kiosk's own site's revocations, the collectors' and office's rights) goes in a `user` block
that this command writes into the ACL file.

The broker makes each user's name its client id (`use_username_as_clientid`), so a user is also one
session: every collector of a shared subscription needs its own user (`--collector collector-2`).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from office.admin.passes import AdminError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MARK = "# kiosk-admin broker-user:"
PATTERNS = [  # as in config/mosquitto/acl; written when the ACL file is new
    "pattern write checkpoint/v1/%u/entry",
    "pattern write checkpoint/v1/%u/status",
    "pattern write checkpoint/v1/%u/alert",
    "pattern write checkpoint/v1/%u/resolution",
    "pattern read checkpoint/v1/%u/cmd/#",
]


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise AdminError(f"{what} {value!r}: letters, digits, '_' and '-' only (1-64)")
    return value


def kiosk_username(site: str, kiosk: str) -> str:
    """The broker username of a kiosk: `{site}/{kiosk}`, which the ACL patterns expand as `%u`."""
    return f"{_name(site, '--site')}/{_name(kiosk, '--kiosk')}"


def acl_block(role: str, username: str, site: str | None = None) -> list[str]:
    """The ACL lines of one user (besides the patterns every user gets)."""
    scope = site or "+"
    rules = {
        "kiosk": [f"topic read checkpoint/v1/{site}/revocations"],
        "collector": [f"topic read checkpoint/v1/{scope}/+/entry",
                      f"topic read checkpoint/v1/{scope}/+/status",
                      f"topic read checkpoint/v1/{scope}/+/alert",
                      f"topic read checkpoint/v1/{scope}/+/resolution",
                      f"topic write checkpoint/v1/{scope}/report"],
        "office": [f"topic write checkpoint/v1/{scope}/+/cmd/#",
                   f"topic readwrite checkpoint/v1/{scope}/revocations",
                   f"topic read checkpoint/v1/{scope}/+/status",
                   f"topic read checkpoint/v1/{scope}/+/alert",
                   f"topic read checkpoint/v1/{scope}/+/resolution",
                   f"topic read checkpoint/v1/{scope}/report"],
    }[role]
    return [f"{MARK} {role} {username}", f"user {username}", *rules]


def update_acl(path: Path, username: str, block: list[str]) -> None:
    """Replace the user's block in the ACL file (or append it), atomically."""
    text = path.read_text(encoding="utf-8") if path.exists() else "\n".join(PATTERNS)
    blocks = re.split(r"\n[ \t]*\n", text.strip("\n")) if text.strip() else []
    kept = [b for b in blocks if f"user {username}" not in [line.strip() for line in b.splitlines()]]
    _write_atomic(path, "\n\n".join([*kept, "\n".join(block)]) + "\n", mode=0o644)


def set_password(passwd_file: Path, username: str, password: str, *, tool: str = "mosquitto_passwd") -> None:
    """Add or update a user with `mosquitto_passwd` (the password goes through stdin, not argv)."""
    exe = shutil.which(tool)
    if exe is None:
        raise AdminError(f"{tool} not found; install mosquitto (or mosquitto-clients)")
    if not passwd_file.exists():
        _write_atomic(passwd_file, "", mode=0o600)
    try:
        result = subprocess.run([exe, str(passwd_file), username], input=f"{password}\n{password}\n",
                                capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise AdminError(f"{tool} did not finish") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise AdminError(f"{tool}: {lines[-1] if lines else f'exit status {result.returncode}'}")


def write_secret(path: Path, secret: str) -> None:
    """Write a secret file with mode 0600 from the start."""
    _write_atomic(path, secret + "\n", mode=0o600)


def _write_atomic(path: Path, text: str, *, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `broker-user` to kiosk-admin's subcommands."""
    p = sub.add_parser(
        "broker-user", help="add or update a mosquitto user (random password, ACL block)",
        description="Add or update a user in mosquitto's password file with a new random password, "
        "written to a 0600 file for the kiosk's mqtt.password_file or LoadCredential=, and write its "
        "block into the ACL file. Reload mosquitto afterwards (SIGHUP, systemctl reload mosquitto).")
    p.add_argument("--passwd", type=Path, required=True, metavar="FILE", help="mosquitto password_file")
    p.add_argument("--acl", type=Path, metavar="FILE", help="mosquitto acl_file to update")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--kiosk", metavar="K", help="a kiosk (site.kiosk); needs --site")
    who.add_argument("--collector", metavar="NAME", help="a collector (reads every kiosk, writes reports)")
    who.add_argument("--office", metavar="NAME", help="an office user (sends commands and revocations)")
    p.add_argument("--site", metavar="S", help="site.id; for a collector or office user, limits it to S")
    p.add_argument("--password-out", type=Path, metavar="FILE",
                   help="where to write the password (mode 0600; default ./<user>.mqtt_password)")
    return p


def run_broker_user(args: argparse.Namespace) -> None:
    """The body of `kiosk-admin broker-user`."""
    site = _name(args.site, "--site") if args.site else None
    if args.kiosk is not None:
        if site is None:
            raise AdminError("--kiosk needs --site")
        role, username = "kiosk", kiosk_username(site, args.kiosk)
    elif args.collector is not None:
        role, username = "collector", _name(args.collector, "--collector")
    else:
        role, username = "office", _name(args.office, "--office")
    out: Path = args.password_out or Path(f"{username.replace('/', '_')}.mqtt_password")
    password = secrets.token_urlsafe(24)
    set_password(args.passwd, username, password)
    write_secret(out, password)
    if args.acl is not None:
        update_acl(args.acl, username, acl_block(role, username, site))
    print(f"{role} user {username!r}: password in {out} (mode 0600)")
    if role == "kiosk":
        print(f'kiosk.toml: [mqtt] username = "{username}", password_file = ... or password_credential')
    elif role == "collector":
        print(f'office.toml: [broker] username = "{username}" (also its client id: one user per collector)')
    print("reload mosquitto to apply: systemctl reload mosquitto (or kill -HUP its pid)")
