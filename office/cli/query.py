"""`kiosk-office report | trace | registry`: the office's queries, for office/cli/main.py.

`add_parsers(sub)` adds the subcommands; each sets `handler(args) -> int` (0 ok, 1 nothing found or a store
failure, 2 a usage or config error). The store comes from `--config FILE` (default
$KIOSK_OFFICE_CONFIG or /etc/checkpoint-kiosk/office.toml) or `--store sqlite:PATH`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, NoReturn
from zoneinfo import ZoneInfo

from checkpoint.configtypes import SecretError, read_key
from checkpoint.entry import Entry, format_ts, utc_now
from checkpoint.tomlconfig import ConfigError
from office.config import DEFAULT_CONFIG, OfficeConfig, load_office_config
from office.registry import RegistryError, absent_households, import_registry, unknown_passes
from office.reports.daily import daily_report, report_refusal, zone
from office.reports.render import FORMATS, render
from office.store.base import Store, StoreError
from office.store.opening import open_store
from office.trace import EntryNotFound, TraceError, close_contacts, trace, trace_csv

PROG = "kiosk-office"
DEFAULT_TZ = "Asia/Shanghai"
EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """A problem with what was given on the command line or in the config; exit status 2."""


@dataclass
class Context:
    """What a query needs from the config (or from `--store` and options)."""

    store_kind: Literal["sqlite", "postgres"]
    store_path: Path | None
    dsn: str | None
    tz: ZoneInfo
    absent_days: int = 7
    site_keys: dict[str, bytes] = field(default_factory=dict)

    @contextmanager
    def store(self, *, create: bool = False) -> Iterator[Store]:
        """Open the store; a SQLite file must exist unless `create`."""
        if self.store_path is not None and not create and not self.store_path.is_file():
            raise UsageError(f"no store at {self.store_path}")
        if self.store_path is not None:
            self.store_path.parent.mkdir(parents=True, exist_ok=True)
        with open_store(self.store_kind, path=self.store_path, dsn=self.dsn) as store:
            yield store


def _common(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", type=Path, metavar="FILE",
                       help=f"collector config (default $KIOSK_OFFICE_CONFIG or {DEFAULT_CONFIG})")
    where.add_argument("--store", metavar="sqlite:PATH", help="use this SQLite store instead of the config's")
    p.add_argument("--tz", metavar="ZONE",
                   help=f"time zone of dates and times (default report.timezone, else {DEFAULT_TZ})")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report`, `trace` and `registry`; each sets `handler`."""
    p = sub.add_parser("report", help="the daily report (日报告 / 零报告) of one local day",
                       description="The day's counts per site and kiosk, as text, CSV, JSON or a PNG chart.")
    p.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the local day (or today, yesterday)")
    p.add_argument("--site", help="one site (default: every site)")
    p.add_argument("--format", "-f", choices=FORMATS, default="text")
    p.add_argument("--out", "-o", type=Path, metavar="FILE", help="write here (default stdout)")
    _common(p)
    p.set_defaults(handler=_report)

    p = sub.add_parser("trace", help="every entry of a person, pass, household or kiosk; close contacts",
                       description="Every query is logged with who ran it. Times: YYYY-MM-DD (local "
                       "midnight) or ISO 8601; --to is exclusive.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--person-ref", metavar="HEX", help="person ref (keyed hash of an ID number)")
    what.add_argument("--id-number", metavar="N",
                      help="ID number, hashed with each site's key and never stored ('-' reads stdin)")
    what.add_argument("--pass", dest="pid", metavar="PID", help="pass id, e.g. P-00017")
    what.add_argument("--household", metavar="HH", help="household, e.g. 9-23-301")
    what.add_argument("--kiosk", metavar="K", help="every entry at a kiosk (with --site when names repeat)")
    what.add_argument("--contacts", metavar="ENTRY_ID",
                      help="everyone at the same kiosk within ±--minutes of an entry")
    p.add_argument("--minutes", type=float, metavar="M", help="with --contacts, or with --kiosk --at")
    p.add_argument("--at", metavar="TIME",
                   help="with --kiosk, --site and --minutes: everyone there around this time")
    p.add_argument("--from", dest="start", metavar="TIME", help="start of the window (inclusive)")
    p.add_argument("--to", dest="end", metavar="TIME", help="end of the window (exclusive)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--csv", action="store_true", help="CSV with fixed columns (never a raw ID number)")
    p.add_argument("--out", "-o", type=Path, metavar="FILE", help="write here (default stdout)")
    p.add_argument("--who", help="who runs the query, for the audit log (default: the OS user)")
    p.add_argument("--site-key", action="append", default=[], metavar="SITE=FILE",
                   help="a site's HMAC key file for --id-number (default: the config's sites.<site>)")
    _common(p)
    p.set_defaults(handler=_trace)

    p = sub.add_parser("registry", help="the issued-pass registry: import passes.csv, compare with entries")
    rsub = p.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    q = rsub.add_parser("import", help="add or replace passes from kiosk-admin's passes.csv")
    q.add_argument("file", type=Path, metavar="passes.csv")
    _common(q)
    q.set_defaults(handler=_registry_import)
    q = rsub.add_parser("unknown-passes", help="passes seen in entries that the registry does not hold")
    q.add_argument("--from", dest="start", required=True, metavar="TIME")
    q.add_argument("--to", dest="end", required=True, metavar="TIME")
    q.add_argument("--site", help="only this site")
    _common(q)
    q.set_defaults(handler=_unknown_passes)
    q = rsub.add_parser("absent", help="registered households with no entry for N days (a welfare check)")
    q.add_argument("--days", type=int, metavar="N", help="default registry.absent_days (7)")
    _common(q)
    q.set_defaults(handler=_absent)


def build_parser() -> argparse.ArgumentParser:
    """A `kiosk-office` parser with only these subcommands (for tests and scripts)."""
    parser = argparse.ArgumentParser(prog=PROG)
    add_parsers(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one of these subcommands; the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


# -- plumbing ------------------------------------------------------------------------------------------


def report_day(text: str, tz: ZoneInfo) -> date:
    """YYYY-MM-DD, or today or yesterday in `tz`."""
    if text in ("today", "yesterday"):
        return utc_now().astimezone(tz).date() - timedelta(days=text == "yesterday")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--date {text!r}: expected YYYY-MM-DD, today or yesterday") from None


def _fail(args: argparse.Namespace, message: str, status: int = EXIT_USAGE) -> int:
    print(f"{PROG} {args.command}: {message}", file=sys.stderr)
    return status


def _guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ConfigError as exc:
            return _fail(args, "; ".join(f"{exc.path}: {problem}" for problem in exc.problems))
        except (UsageError, SecretError, TraceError, RegistryError) as exc:
            status = EXIT_FAILED if isinstance(exc, EntryNotFound) else EXIT_USAGE
            return _fail(args, str(exc), status)
        except StoreError as exc:
            return _fail(args, f"store: {exc}", EXIT_FAILED)
    return guarded


def context(args: argparse.Namespace) -> Context:
    """The store and settings from `--store` or the config."""
    config: OfficeConfig | None = None
    if args.store is not None:
        kind, _, path = str(args.store).partition(":")
        if kind != "sqlite" or not path:
            raise UsageError(f"--store {args.store!r}: expected sqlite:PATH (other stores via --config)")
        ctx = Context("sqlite", Path(path), None, ZoneInfo(DEFAULT_TZ))
    else:
        path_text = args.config or os.environ.get("KIOSK_OFFICE_CONFIG") or DEFAULT_CONFIG
        config_path = Path(path_text)
        if args.config is None and not config_path.exists():
            raise UsageError(f"no config at {config_path}: give --config FILE or --store sqlite:PATH")
        config = load_office_config(config_path)
        cfg = config.store
        ctx = Context(cfg.kind, cfg.path if cfg.kind == "sqlite" else None, cfg.dsn(), config.report.zone,
                      config.registry.absent_days)
    if args.tz is not None:
        try:
            ctx.tz = zone(args.tz)
        except ValueError as exc:
            raise UsageError(f"--tz: {exc}") from None
    if getattr(args, "id_number", None) is not None:
        ctx.site_keys = _site_keys(config, getattr(args, "site_key", []))
    return ctx


def _site_keys(config: OfficeConfig | None, given: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    if config is not None:
        for site, section in config.sites.items():
            key = section.hmac_key()
            if key is not None:
                keys[site] = key
    for item in given:
        site, sep, path = item.partition("=")
        if not sep or not site or not path:
            raise UsageError(f"--site-key {item!r}: expected SITE=FILE")
        key = read_key(f"--site-key {site}", Path(path), None)
        assert key is not None
        keys[site] = key
    return keys


def when(text: str, tz: ZoneInfo, what: str) -> datetime:
    """A time from YYYY-MM-DD (local midnight) or ISO 8601 (local when it has no offset)."""
    try:
        parsed = datetime.combine(date.fromisoformat(text), time(0)) if len(text) == 10 else (
            datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected YYYY-MM-DD or an ISO 8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def _window(args: argparse.Namespace, tz: ZoneInfo) -> tuple[datetime, datetime]:
    if args.start is None or args.end is None:
        raise UsageError("give the window: --from TIME --to TIME")
    return when(args.start, tz, "--from"), when(args.end, tz, "--to")


def _write(args: argparse.Namespace, data: bytes) -> None:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(data)
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _die(message: str) -> NoReturn:
    raise UsageError(message)


# -- handlers ------------------------------------------------------------------------------------------


@_guard
def _report(args: argparse.Namespace) -> int:
    ctx = context(args)
    day = report_day(args.date, ctx.tz)
    if args.format == "png" and args.out is None and sys.stdout.isatty():
        _die("a PNG is not for the terminal: give --out FILE or redirect stdout")
    now = utc_now()
    with ctx.store() as store:
        refused = report_refusal(store, day, site=args.site, tz=ctx.tz, now=now)
        if refused is not None:
            _die(refused)
        report = daily_report(store, day, site=args.site, tz=ctx.tz, now=now)
    _write(args, render(report, args.format))
    return 0


@_guard
def _trace(args: argparse.Namespace) -> int:
    ctx = context(args)
    who = args.who or None
    if args.contacts is not None or args.at is not None:
        if args.minutes is None:
            _die("close contacts need --minutes M")
        if args.start is not None or args.end is not None:
            _die("close contacts take no --from/--to: the window is ±--minutes")
        if args.contacts is not None:
            index: str | tuple[str, str, datetime] = args.contacts
        elif args.kiosk is None or args.site is None:
            _die("--at needs --kiosk K and --site S")
        else:
            index = (args.site, args.kiosk, when(args.at, ctx.tz, "--at"))
        with ctx.store() as store:
            entries = close_contacts(store, index, minutes=args.minutes, who=who)
    else:
        if args.minutes is not None:
            _die("--minutes goes with --contacts or --at")
        start, end = _window(args, ctx.tz)
        id_number = _read_id_number(args.id_number)
        with ctx.store() as store:
            entries = trace(store, start=start, end=end, person_ref=args.person_ref, id_number=id_number,
                            pid=args.pid, household=args.household, kiosk=args.kiosk, site=args.site, who=who,
                            site_keys=ctx.site_keys)
    data = trace_csv(entries, ctx.tz) if args.csv else _trace_text(entries, ctx.tz)
    _write(args, data.encode("utf-8"))
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=sys.stderr)
    return 0


def _read_id_number(value: str | None) -> str | None:
    if value != "-":
        return value
    if sys.stdin.isatty():
        return getpass.getpass("ID number: ")
    return sys.stdin.readline().strip()


def _trace_text(entries: Sequence[Entry], tz: ZoneInfo) -> str:
    lines = []
    for e in entries:
        who = " ".join(part for part in (
            f"{e.pass_.pid} {e.pass_.cat}" + (f" hh {e.pass_.hh}" if e.pass_.hh else "") if e.pass_ else "",
            e.person.masked if e.person else "") if part) or "-"
        reasons = ",".join(str(r) for r in e.reasons)
        extra = "".join([f" [{reasons}]" if reasons else "", f" override={e.override}" if e.override else "",
                         f" {e.temperature.body_c:.1f}°C" if e.temperature else ""])
        lines.append(f"{e.ts.astimezone(tz):%Y-%m-%d %H:%M:%S} {e.site}/{e.kiosk} #{e.seq} {e.direction} "
                     f"{e.decision}{extra} {who} id {e.id}")
    return "".join(line + "\n" for line in lines)


@_guard
def _registry_import(args: argparse.Namespace) -> int:
    ctx = context(args)
    if not args.file.is_file():
        _die(f"no file {args.file}")
    with ctx.store(create=True) as store:
        count = import_registry(store, args.file)
    print(f"{count} passes imported from {args.file}")
    return 0


@_guard
def _unknown_passes(args: argparse.Namespace) -> int:
    ctx = context(args)
    start, end = _window(args, ctx.tz)
    with ctx.store() as store:
        found = unknown_passes(store, start, end, site=args.site)
    for p in found:
        print(f"{p.pid} {p.cat}{' hh ' + p.hh if p.hh else ''}: {p.entries} entries "
              f"{p.first.astimezone(ctx.tz):%Y-%m-%d %H:%M}–{p.last.astimezone(ctx.tz):%Y-%m-%d %H:%M} "
              f"at {', '.join(p.kiosks)}")
    print(f"{len(found)} pass(es) seen but not in the registry "
          f"({format_ts(start)} to {format_ts(end)})", file=sys.stderr)
    return 0


@_guard
def _absent(args: argparse.Namespace) -> int:
    ctx = context(args)
    days = ctx.absent_days if args.days is None else args.days
    if days < 1:
        _die("--days: expected 1 or more")
    with ctx.store() as store:
        found = absent_households(store, days=days, now=utc_now())
    for hh in found:
        seen = (f"last seen {hh.last_seen.astimezone(ctx.tz):%Y-%m-%d %H:%M}" if hh.last_seen
                else "no entry stored")
        print(f"{hh.hh}: {seen} (passes {', '.join(hh.pids)})")
    print(f"{len(found)} household(s) without an entry for {days} days", file=sys.stderr)
    return 0
