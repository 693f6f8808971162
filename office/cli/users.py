"""`kiosk-office user add|passwd|disable|enable|list`: the web app's users, for office/cli/main.py.

The password comes from a prompt (asked twice) or, when stdin is not a terminal, from its first line.
Every change is written with an audit line naming the OS user who made it ("cli:NAME").
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from pathlib import Path
from typing import TextIO

from checkpoint.configtypes import SecretError
from checkpoint.entry import utc_now
from checkpoint.tomlconfig import ConfigError
from office.cli.query import UsageError, context
from office.config import DEFAULT_CONFIG
from office.store.base import ROLES, Store, StoreError
from office.web.passwords import WeakPassword, hash_password

PROG = "kiosk-office user"
USER_NAME = re.compile(r"[\w.@-]{1,64}")
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `user` and its actions; each sets `handler`."""
    p = sub.add_parser("user", help="the web app's users: add, passwd, disable, enable, list",
                       description="Roles: guard (overview and alerts), office (everything but users), "
                       "admin (everything). Every change is audited.")
    actions = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    for name, help_text in (("add", "add a user (the password from a prompt or stdin)"),
                            ("passwd", "set a user's password (and role, with --role)"),
                            ("disable", "refuse a user's sign-in from now on"),
                            ("enable", "let a disabled user sign in again"),
                            ("list", "every user, with role and state")):
        q = actions.add_parser(name, help=help_text)
        if name != "list":
            q.add_argument("name", metavar="NAME")
        if name in ("add", "passwd"):
            q.add_argument("--role", choices=ROLES, default="guard" if name == "add" else None,
                           help="guard, office or admin" + (" (default guard)" if name == "add" else ""))
        where = q.add_mutually_exclusive_group()
        where.add_argument("--config", "-c", type=Path, metavar="FILE",
                           help=f"office config (default $KIOSK_OFFICE_CONFIG or {DEFAULT_CONFIG})")
        where.add_argument("--store", metavar="sqlite:PATH", help="this SQLite store instead of the config's")
        q.set_defaults(handler=run_user, tz=None)


def read_password(stdin: TextIO, *, confirm: bool = True) -> str:
    """A new password from a prompt (twice) or the first line of a non-terminal stdin."""
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:?"


def run_user(args: argparse.Namespace) -> int:
    """Do the action; 0 done, 1 no such user (or taken) or a store failure, 2 a usage or config error."""
    try:
        with context(args).store(create=args.user_command == "add") as store:
            return _act(args, store)
    except ConfigError as exc:
        return _fail("; ".join(f"{exc.path}: {problem}" for problem in exc.problems), EXIT_USAGE)
    except (UsageError, SecretError, WeakPassword) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        return _fail(f"store: {exc}", EXIT_FAILED)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def _act(args: argparse.Namespace, store: Store) -> int:
    action, now, who = args.user_command, utc_now(), _who()
    if action == "list":
        for user in store.users():
            state = "disabled" if user.disabled else "active"
            print(f"{user.name}\t{user.role}\t{state}\tsince {user.created:%Y-%m-%d}")
        return 0
    name = args.name
    if not USER_NAME.fullmatch(name):
        raise UsageError(f"user name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
    if action == "add":
        if store.user(name) is not None:
            return _fail(f"{name!r} exists (kiosk-office user passwd {name})", EXIT_FAILED)
        if not store.add_user(name, args.role, hash_password(read_password(sys.stdin)), by=who, at=now):
            return _fail(f"{name!r} exists", EXIT_FAILED)
        print(f"added {name} ({args.role})")
        return 0
    if store.user(name) is None:
        return _fail(f"no user {name!r}", EXIT_FAILED)
    if action == "passwd":
        done = store.update_user(name, by=who, at=now, password_hash=hash_password(read_password(sys.stdin)),
                                 role=args.role)
    else:
        done = store.update_user(name, by=who, at=now, disabled=action == "disable")
    if not done:
        return _fail(f"no user {name!r}", EXIT_FAILED)
    print(f"{name}: {'password set' if action == 'passwd' else action + 'd'}")
    return 0
