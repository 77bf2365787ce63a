"""The ``hanzo-ml`` command line (click): one module per group of verbs, all assembled here.

Exit codes: 0 done; 1 the command failed (a :class:`~hanzo.ml.config.errors.HanzoError`, printed as one
line, or a check such as a missed threshold); 2 a usage error or a bad ``HANZO_*`` setting; 130 Ctrl-C.

Examples
--------
>>> from hanzo.ml.config.settings import Settings
>>> run(["registry", "list", "--help"], Settings()) == 0
Usage: hanzo-ml registry list [OPTIONS] [NAME]
...
True
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from hanzo.ml.config.errors import HanzoError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import err_console
from hanzo.ml.streams.cli.demo import demo_command
from hanzo.ml.streams.cli.dlq import dlq_group
from hanzo.ml.streams.cli.features import features_group
from hanzo.ml.streams.cli.monitor import monitor_command, report_command
from hanzo.ml.streams.cli.registry import registry_group
from hanzo.ml.streams.cli.simulate import simulate_command
from hanzo.ml.streams.cli.stack import down_command, status_command, up_command
from hanzo.ml.streams.cli.train import train_command
from hanzo.ml.streams.cli.worker import worker_command

__all__ = ["cli", "main", "run"]


class _InOrder(click.Group):
    """Lists the verbs in the order they were added (the order of a day's work), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group("hanzo-ml", cls=_InOrder, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
def cli(verbose: bool) -> None:
    """Streaming online learning for commerce."""


for command in (
    up_command,
    down_command,
    status_command,
    simulate_command,
    worker_command,
    demo_command,
    features_group,
    train_command,
    registry_group,
    monitor_command,
    report_command,
    dlq_group,
):
    cli.add_command(command)


def run(argv: Sequence[str], settings: Settings | None = None) -> int:
    """Run one command line with ``settings`` (default: read from ``HANZO_*``); errors propagate.

    For tests and programs that embed the CLI: a :class:`HanzoError` or :class:`click.UsageError` is
    raised, not printed. ``--help`` returns 0.
    """
    result = cli.main(args=list(argv), prog_name="hanzo-ml", standalone_mode=False, obj=settings)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hanzo-ml``; returns the process exit code."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except click.UsageError as exc:
        exc.show()
        return exc.exit_code
    except HanzoError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        return 1
    except (click.Abort, KeyboardInterrupt):
        return 130


if __name__ == "__main__":
    sys.exit(main())
