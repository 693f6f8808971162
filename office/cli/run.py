"""`kiosk-office run --config FILE`: the subcommand's parser and handler, for office/cli/main.py."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from checkpoint.systemd import setup_logging
from checkpoint.tomlconfig import ConfigError
from office.config import DEFAULT_CONFIG, load_office_config
from office.ingest.service import run

EXIT_CONFIG = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `run` to the subcommands; it sets `handler` to `run_command`."""
    default = os.environ.get("KIOSK_OFFICE_CONFIG") or str(DEFAULT_CONFIG)
    p = sub.add_parser("run", help="the office service: ingest, reports, retention and the web app "
                       "(systemd runs this)")
    p.add_argument("--config", "-c", type=Path, default=Path(default),
                   help=f"config file (default $KIOSK_OFFICE_CONFIG or {DEFAULT_CONFIG})")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.set_defaults(handler=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    """Load the config and run the service; 2 on a config error."""
    setup_logging(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    try:
        config = load_office_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return run(config)
