"""The `kiosk-admin` command for the community office: keys, passes, health tokens, revocations, commands."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint import __version__, idnumber
from checkpoint.configtypes import SecretError
from checkpoint.keys import KeyFileError, load_private_key
from checkpoint.reasons import COLOURS, STATUSES, TRAVEL_STATUSES
from checkpoint.residents import Registry, Resident
from office.admin.broker_users import add_parser as add_broker_user_parser
from office.admin.broker_users import run_broker_user
from office.admin.commands import add_parser as add_command_parser
from office.admin.commands import run_command
from office.admin.passes import (
    BATCH_HELP,
    AdminError,
    export_pubkeys,
    health_token,
    make_pass,
    parse_when,
    person_idh,
    read_batch,
    refuse_issued,
    revocation_list,
    sheet_html,
    site_key,
    timezone_named,
    window,
    write_passes,
    write_png,
)
from office.admin.platform import PlatformError, lookup_hpr

WHEN = "Unix seconds, YYYY-MM-DD (midnight) or ISO 8601; without an offset in --tz"


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


def _signing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", type=Path, required=True, metavar="PRIV", help="private key from `keygen`")
    p.add_argument("--kid", help="key id to sign as (default: derived from the key, as export-pubkeys does)")


def _person(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group()
    who.add_argument("--id-number", metavar="N",
                     help="holder's ID number, hashed with --site-key and never stored ('-' reads stdin)")
    who.add_argument("--idh", metavar="HEX", help="holder's idh (HMAC-SHA256 hex), if already known")
    p.add_argument("--site-key", type=Path, metavar="FILE", help="site HMAC key file (site.hmac_key_file)")
    p.add_argument("--tz", metavar="ZONE", help="time zone for times without an offset (default: local)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-admin", description="checkpoint-kiosk office tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("keygen", help="make an Ed25519 signing key (private 0600, public .pub)")
    p.add_argument("path", type=Path, help="private key file to write")
    p.add_argument("--force", action="store_true", help="replace an existing key")

    p = sub.add_parser("export-pubkeys", help="write <kid>.pub for passes.keys_dir / health.token_keys_dir")
    p.add_argument("keys", type=Path, nargs="+", metavar="KEY", help="private or public key files (PEM)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace a different key of the same kid")

    p = sub.add_parser("issue-pass", help="sign passes: <pid>.txt, <pid>.png and passes.csv in --out",
                       description="Sign one pass, or a batch from CSV (which also writes sheet.html, "
                       "an A4 sheet of the QR codes to print).")
    _signing(p)
    p.add_argument("--batch", type=Path, metavar="CSV", help=BATCH_HELP)
    p.add_argument("--pid", help="pass id, e.g. P-00017")
    p.add_argument("--cat", choices=COLOURS, help="green resident, blue renter, red returned, pink visitor")
    p.add_argument("--hh", help="household, e.g. 9-23-301 (makes a household temporary pass)")
    p.add_argument("--name", default="", help="holder's name; only the masked form (张**) is signed")
    _person(p)
    p.add_argument("--hpr", metavar="REF", help="the health platform's reference for the holder (from "
                   "register-resident --platform-url); makes a v2 pass that binds health codes to it")
    p.add_argument("--from", "--nbf", dest="nbf", metavar="WHEN", help=f"start (default now): {WHEN}")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--days", help="days of validity from the start")
    end.add_argument("--exp", metavar="WHEN", help=f"end: {WHEN}")
    p.add_argument("--community", default="", metavar="NAME",
                   help="the community's name printed on each card of sheet.html, e.g. 幸福里社区")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")

    p = sub.add_parser("issue-health-token", help="sign a health token (HCT1) and print it")
    _signing(p)
    p.add_argument("--status", choices=STATUSES, required=True)
    _person(p)
    p.add_argument("--travel", choices=TRAVEL_STATUSES,
                   help="travel card colour: makes a v2 token (两码合一)")
    p.add_argument("--star", action="store_true", help="the travel card is starred (itinerary touched a risk "
                   "city); needs --travel")
    p.add_argument("--hpr", metavar="REF", help="the holder's platform reference (v2 tokens; needs --travel)")
    p.add_argument("--iat", metavar="WHEN", help=f"issue time (default now): {WHEN}")
    p.add_argument("--ttl-s", type=int, default=180, help="seconds of validity (default 180)")
    p.add_argument("--png", type=Path, metavar="FILE", help="also write the QR code")

    p = sub.add_parser("revoke", help="sign the site's complete list of revoked pass ids (CKR1)",
                       description="Sign the list to publish, retained, on checkpoint/v1/{site}/revocations. "
                       "It replaces the previous list whole, so list every pid still revoked.")
    _signing(p)
    p.add_argument("--site", required=True, help="site id (site.id of the kiosks)")
    p.add_argument("--serial", type=int, help="list number, above every earlier one (default: Unix time now)")
    p.add_argument("pids", nargs="*", metavar="PID")
    p.add_argument("--from-file", type=Path, metavar="FILE", help="more pids, one a line ('#' comments)")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write the list to FILE")

    p = sub.add_parser("register-resident",
                       help="add a resident to a kiosk's registry by ID number (stores only a keyed hash)")
    p.add_argument("--db", type=Path, required=True, metavar="FILE",
                   help="the registry (passes.registry, default <state_dir>/registry.sqlite)")
    p.add_argument("--site-key", type=Path, required=True, metavar="FILE", help="site HMAC key file")
    p.add_argument("--id-number", required=True, metavar="N", help="18-digit ID number; '-' reads stdin")
    p.add_argument("--household", metavar="HH", help="household, e.g. 9-23-301")
    p.add_argument("--remove", action="store_true", help="remove the resident instead")
    p.add_argument("--platform-url", metavar="URL", help="the health platform's ID lookup (health.http_url): "
                   "prints the resident's hpr, which issue-pass --hpr signs into a v2 pass")
    p.add_argument("--platform-token-file", type=Path, metavar="FILE", help="bearer token for the platform")
    add_broker_user_parser(sub)
    add_command_parser(sub)
    return parser


def _register_resident(args: argparse.Namespace) -> None:
    key = site_key(args.site_key)
    assert key is not None
    try:
        number = idnumber.parse(_id_number(args) or "")
    except idnumber.IdNumberError as exc:
        raise AdminError(f"ID number: {exc.problem}") from None
    ref = number.person_ref(key)
    with Registry(args.db) as registry:
        if args.remove:
            found = registry.remove(ref)
            print(f"{number.masked}: {'removed' if found else 'was not registered'}")
            return
        registry.upsert([Resident(ref, number.masked, args.household)])
    print(f"{number.masked}: registered" + (f" in household {args.household}" if args.household else ""))
    if args.platform_url:
        token = args.platform_token_file.read_text().strip() if args.platform_token_file else None
        try:
            print(f"hpr: {lookup_hpr(args.platform_url, ref, token=token)}")
        except PlatformError as exc:
            raise AdminError(str(exc)) from None


def _id_number(args: argparse.Namespace) -> str | None:
    value: str | None = args.id_number
    if value == "-":
        value = sys.stdin.readline().strip()
    return value


def _issue_pass(args: argparse.Namespace) -> None:
    key = load_private_key(args.key)
    tz = timezone_named(args.tz)
    site = site_key(args.site_key)
    if args.batch is not None:
        given = [name for name in ("pid", "cat", "hh", "name", "id_number", "idh", "hpr")
                 if getattr(args, name)]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise AdminError(f"--batch takes the pass fields from the CSV, not {option}")
        passes = read_batch(args.batch, key, args.kid, site=site, tz=tz, nbf=args.nbf, exp=args.exp,
                            days=args.days)
        refuse_issued(passes, args.out)
        write_passes(passes, args.out)
        (args.out / "sheet.html").write_text(sheet_html(passes, tz, args.community), encoding="utf-8")
        print(f"{len(passes)} passes in {args.out}: <pid>.txt, <pid>.png, passes.csv, sheet.html")
        return
    if not args.pid or not args.cat:
        raise AdminError("give --pid and --cat, or --batch CSV")
    nbf, exp = window(args.nbf, args.exp, args.days, tz=tz)
    idh = person_idh(id_number=_id_number(args), idh=args.idh, key=site)
    issued = make_pass(key, args.kid, pid=args.pid, cat=args.cat, hh=args.hh, name=args.name, idh=idh,
                       nbf=nbf, exp=exp, hpr=args.hpr)
    refuse_issued([issued], args.out)
    write_passes([issued], args.out)
    print(issued.text)


def _issue_health_token(args: argparse.Namespace) -> None:
    key = load_private_key(args.key)
    tz = timezone_named(args.tz)
    idh = person_idh(id_number=_id_number(args), idh=args.idh, key=site_key(args.site_key))
    iat = parse_when(args.iat, tz) if args.iat else int(time.time())
    token = health_token(key, args.kid, status=args.status, idh=idh, iat=iat, ttl_s=args.ttl_s,
                         travel=args.travel, star=args.star, hpr=args.hpr)
    if args.png is not None:
        write_png(token, args.png)
    print(token)


def _revoke(args: argparse.Namespace) -> None:
    key = load_private_key(args.key)
    serial = int(time.time()) if args.serial is None else args.serial
    text = revocation_list(key, args.kid, site=args.site, serial=serial, pids=args.pids,
                           from_file=args.from_file)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="ascii")
    print(text)


def _export_pubkeys(args: argparse.Namespace) -> None:
    for path in export_pubkeys(args.keys, args.out, force=args.force):
        print(path)


COMMANDS = {
    "issue-pass": _issue_pass,
    "issue-health-token": _issue_health_token,
    "revoke": _revoke,
    "export-pubkeys": _export_pubkeys,
    "register-resident": _register_resident,
    "broker-user": run_broker_user,
    "command": run_command,
}


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
    command = COMMANDS.get(args.command)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        command(args)
    except (AdminError, KeyFileError, SecretError, ValueError, csv.Error) as exc:
        print(f"kiosk-admin {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kiosk-admin {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
