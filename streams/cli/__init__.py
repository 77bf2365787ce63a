"""The ``hanzo-ml`` command line: one sub-command per verb, registered by the module that owns it.

A module that adds verbs exposes ``add_commands(subparsers)``; each verb sets ``func(args, settings)``.
Logging and terminal output for people are configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rich.console import Console

from hanzo.ml.config.errors import HanzoError
from hanzo.ml.config.settings import Settings

logger = logging.getLogger(__name__)

#: Modules that contribute verbs, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "hanzo.ml.streams.embedded",
    "hanzo.ml.streams.simulator",
    "hanzo.ml.streams.worker",
    "hanzo.ml.streams.demo",
    "hanzo.ml.features.cli",
    "hanzo.ml.learners.cli",
    "hanzo.ml.registry.cli",
    "hanzo.ml.monitor.cli",
    "hanzo.ml.monitor.report_cli",
    "hanzo.ml.streams.dlq",
)

console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every available verb."""
    parser = argparse.ArgumentParser(prog="hanzo-ml", description="Streaming online learning for commerce.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hanzo-ml``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = Settings()
    except Exception as exc:  # pydantic names the variable and the value
        console.print(f"[red]bad HANZO_* setting:[/red] {exc}")
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        if not args.verbose:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args, settings) or 0)
    except HanzoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
