"""The `kiosk` command: run, check-config, check, simulate, scan, verify, calibrate.

Each subcommand imports its module when it runs, so that `check-config`, `verify` and `--version` start
without loading OpenCV or the GPIO stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from checkpoint import __version__
from checkpoint.configtypes import SecretError
from checkpoint.systemd import setup_logging
from checkpoint.tomlconfig import ConfigError
from kiosk.config import KioskConfig, check_paths, check_secrets, load_config, load_embedded

DEFAULT_CONFIG = Path("/etc/checkpoint-kiosk/kiosk.toml")
EXIT_CONFIG = 2


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("KIOSK_CONFIG") or DEFAULT_CONFIG)


def _load(args: argparse.Namespace) -> KioskConfig:
    if getattr(args, "simulate", False):
        return load_embedded()
    return load_config(_config_path(args))


def cmd_check_config(path: Path) -> int:
    """Print OK, or one line per problem naming the key; exit 2 on any problem.

    Beyond the file itself: the key directories and the CA file it names exist, and its secrets can be read.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    problems = check_paths(config) + check_secrets(config)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print("OK")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Open each configured device once and print one line per device."""
    from kiosk.cli.check import run_self_test

    config = _load(args)
    results = run_self_test(config)
    for result in results:
        print(result.line)
    return 1 if any(r.required and not r.ok for r in results) else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Play a scenario through the real flow on emulated hardware."""
    from kiosk.sim.scenario import load_scenario
    from kiosk.sim.simulate import run_simulation

    config = load_config(Path(args.config)) if args.config else load_embedded()
    if config.hardware != "emulated":
        print("simulate needs a config with hardware = 'emulated'", file=sys.stderr)
        return EXIT_CONFIG
    scenario = load_scenario(args.scenario)
    state: Path | None = args.state_dir or (config.storage.state_dir if args.serve else None)
    status = run_simulation(config, scenario, as_json=args.json, realtime=args.realtime, state_dir=state)
    if state is None or not args.serve:
        return status
    from kiosk.sim.serve import serve

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return serve(state, port=args.port, stop=stop)


def cmd_run(args: argparse.Namespace) -> int:
    """The gate daemon."""
    from drivers.errors import DeviceError
    from kiosk.app import run
    from kiosk.outbox import OutboxError

    config = _load(args)
    try:
        return run(config, config_path=_config_path(args))
    except (DeviceError, OutboxError, SecretError, OSError) as exc:
        # Fail shut and let systemd restart us: the relay was never energised.
        logging.getLogger("kiosk").error("cannot start: %s", exc)
        return 1


def _verify_config(args: argparse.Namespace) -> KioskConfig:
    """--config, else $KIOSK_CONFIG, else the installed config, else the embedded default."""
    if args.config or os.environ.get("KIOSK_CONFIG") or DEFAULT_CONFIG.exists():
        return load_config(_config_path(args))
    return load_embedded()


def cmd_verify(args: argparse.Namespace) -> int:
    """Classify and verify one payload; exit 0 when it is acceptable as it stands, 1 when refused."""
    from kiosk.cli.verify import run_verify

    return run_verify(
        args.payload, config=_verify_config(args), dsc=args.dsc, at=args.at, as_json=args.json,
        shown_with=args.shown_with
    )


def cmd_scan(args: argparse.Namespace) -> int:
    """Decode the QR codes in image files."""
    from kiosk.cli.scan import run_scan

    return run_scan(args.paths, as_json=args.json)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the skin-to-body compensation from reference pairs."""
    from kiosk.cli.calibrate import run_calibrate

    return int(run_calibrate(args.file))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description="checkpoint-kiosk gate daemon")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--check-config", metavar="FILE", type=Path,
                        help="validate FILE and exit (same as the check-config command)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("check-config", help="validate a config file; exit 2 on errors")
    p.add_argument("file", type=Path)

    p = sub.add_parser("check", help="hardware self-test: one line per device")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", help=f"config file (default $KIOSK_CONFIG or {DEFAULT_CONFIG})")
    group.add_argument("--simulate", action="store_true", help="use the embedded simulation config")

    p = sub.add_parser("run", help="the gate daemon (systemd runs this)")
    p.add_argument("--config", "-c", help=f"config file (default $KIOSK_CONFIG or {DEFAULT_CONFIG})")

    p = sub.add_parser("simulate", help="a simulated gate: the real flow on emulated hardware, virtual time")
    p.add_argument("--config", "-c", help="an emulated-hardware config (default: embedded)")
    p.add_argument("--scenario", type=Path, help="scenario TOML (default: the built-in one)")
    p.add_argument("--json", action="store_true", help="one JSON object per person")
    p.add_argument("--realtime", action="store_true", help="play in real time, for demos at a real gate")
    p.add_argument("--state-dir", type=Path,
                   help="keep the outbox here across runs (default: a temporary directory)")
    p.add_argument("--serve", action="store_true",
                   help="then keep the office web app running on 127.0.0.1 with people arriving at two gates")
    p.add_argument("--port", type=int, default=8080, help="the web app's port with --serve (0: any free one)")

    p = sub.add_parser("scan", help="decode the QR codes in image files (one line per image)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per image (a stable contract)")

    p = sub.add_parser("calibrate", help="fit offset_c and ambient_coeff from reference readings (CSV)")
    p.add_argument("file", type=Path,
                   help="CSV: skin_c,ambient_c,reference_body_c (the reference from a clinical thermometer)")

    p = sub.add_parser("verify", help="classify and verify one scanned payload")
    p.add_argument("payload", help="the payload text; '-' reads it from standard input")
    p.add_argument("--config", "-c",
                   help="config file (default $KIOSK_CONFIG, then the installed one, then the embedded one)")
    p.add_argument("--dsc", action="append", default=[], metavar="CERT",
                   help="trust this DCC signer certificate: base64 DER, or a PEM/DER file (repeatable)")
    p.add_argument("--at", metavar="ISO8601", help="verify as of this time (default now; no zone = UTC)")
    p.add_argument("--with", dest="shown_with", action="append", default=[], metavar="PASS",
                   help="a pass shown in the same visit: a health code naming another holder then gets "
                   "health_code_not_holder (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object (a stable contract)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO if args.command == "run" else logging.WARNING
    setup_logging(level)
    if args.check_config is not None:
        return cmd_check_config(args.check_config)
    try:
        if args.command == "check-config":
            return cmd_check_config(args.file)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "simulate":
            return cmd_simulate(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "scan":
            return cmd_scan(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "calibrate":
            return cmd_calibrate(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    parser.print_help()
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
