"""`kiosk-collector run --config FILE`: the subcommand's parser and handler, for kiosk/collector/cli.py."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from kiosk.collector.config import DEFAULT_CONFIG, load_collector_config
from kiosk.tomlconfig import ConfigError

EXIT_CONFIG = 2
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `run` to the subcommands; it sets `handler` to `run_command`."""
    default = os.environ.get("KIOSK_COLLECTOR_CONFIG") or str(DEFAULT_CONFIG)
    p = sub.add_parser("run", help="the collector service (systemd runs this)")
    p.add_argument("--config", "-c", type=Path, default=Path(default),
                   help=f"config file (default $KIOSK_COLLECTOR_CONFIG or {DEFAULT_CONFIG})")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.set_defaults(handler=run_command)
    return p


def _journal_priority(record: logging.LogRecord) -> bool:
    record.priority = f"<{_PRIORITY.get(record.levelno, 6)}>"
    return True


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM) with `<N>` priority prefixes and no timestamps."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if root.handlers:
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(priority)s%(name)s: %(message)s"))
        handler.addFilter(_journal_priority)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def run_command(args: argparse.Namespace) -> int:
    """Load the config and run the service; 2 on a config error."""
    setup_logging(bool(getattr(args, "verbose", False)))
    try:
        config = load_collector_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    from kiosk.collector.service import run

    return run(config)


def main(argv: list[str] | None = None) -> int:
    """`python -m kiosk.collector.run_cmd --config FILE`: the same as `kiosk-collector run`."""
    parser = argparse.ArgumentParser(prog="kiosk-collector")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
