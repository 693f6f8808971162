"""`kiosk-admin command`: sign a command for one kiosk (CKC1) and publish it, live and never retained."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from checkpoint.commands import COMMANDS, DEFAULT_VALIDITY_S, MAX_VALIDITY_S, issue_command
from checkpoint.configtypes import read_secret
from checkpoint.keys import load_private_key
from checkpoint.topics import topics
from office.admin.passes import AdminError
from office.mqtt import PublishError, publish_once


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `command` to kiosk-admin's subcommands."""
    p = sub.add_parser(
        "command", help="sign a command for one kiosk (CKC1) and publish it",
        description="Sign open, reload or ping for one kiosk with an operator's key and publish it on "
        "checkpoint/v1/{site}/{kiosk}/cmd/{command} (QoS 1, not retained). An open that resolves an "
        "attention names its entry with --entry. The kiosk obeys it once, within its validity.")
    p.add_argument("name", choices=COMMANDS, metavar="COMMAND", help="open, reload or ping")
    p.add_argument("--site", required=True, metavar="S")
    p.add_argument("--kiosk", required=True, metavar="K")
    p.add_argument("--key", type=Path, required=True, metavar="PRIV", help="the operator's key from `keygen`")
    p.add_argument("--kid", help="key id to sign as (default: derived from the key)")
    p.add_argument("--op", required=True, metavar="NAME", help="the operator's name, as the kiosk logs it")
    p.add_argument("--entry", metavar="ID", help="for open: the attention entry it resolves")
    p.add_argument("--validity-s", type=int, default=DEFAULT_VALIDITY_S,
                   help=f"seconds the kiosk may obey it (default {DEFAULT_VALIDITY_S}, "
                   f"at most {MAX_VALIDITY_S})")
    p.add_argument("--print", action="store_true", help="print the signed command instead of publishing it")
    broker = p.add_argument_group("broker")
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=1883)
    broker.add_argument("--username", help="an office broker user (kiosk-admin broker-user --office)")
    broker.add_argument("--password-file", type=Path, metavar="FILE")
    broker.add_argument("--ca-file", type=Path, metavar="FILE", help="TLS with this CA (port 8883)")
    return p


def run_command(args: argparse.Namespace) -> None:
    """The body of `kiosk-admin command`."""
    key = load_private_key(args.key)
    text = issue_command(key, args.kid, site=args.site, kiosk=args.kiosk, cmd=args.name, op=args.op,
                         entry=args.entry, now=datetime.now(UTC), validity_s=args.validity_s)
    if args.print:
        print(text)
        return
    password = read_secret("--password-file", args.password_file, None)
    topic = f"{topics(args.site, args.kiosk).cmd}/{args.name}"
    try:
        publish_once(topic, text, host=args.host, port=args.port, username=args.username,
                     password=password.decode() if password is not None else None, ca_file=args.ca_file)
    except PublishError as exc:
        raise AdminError(str(exc)) from exc
    print(f"{args.name} sent to {args.site}/{args.kiosk}")
