"""``hanzo-ml demo``: the whole system on the embedded stack for a minute (:mod:`~hanzo.ml.streams.demo`)."""

from __future__ import annotations

import click

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import pass_settings
from hanzo.ml.streams.demo import run_demo


@click.command("demo", short_help="Run everything on the embedded stack for about a minute.")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="how long to stream orders")
@click.option("--rate", type=float, default=300.0, show_default=True, help="orders per second")
@click.option("--seed", type=int, default=7, show_default=True, help="random seed of the simulator")
@click.option("--keep-stack", is_flag=True, help="leave the broker and Redis running afterwards")
@click.option(
    "--drift-at",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="where the simulator shifts the stream, as a share of the orders",
)
@click.option("--no-drift", is_flag=True, help="stream without the shift (a control run)")
@pass_settings
def demo_command(
    settings: Settings,
    seconds: float,
    rate: float,
    seed: int,
    keep_stack: bool,
    drift_at: float,
    no_drift: bool,
) -> int:
    """Run everything on the embedded stack for about a minute, with live progress and a summary.

    Halfway through, the simulator shifts the stream (prices up, more orders shipped abroad); the summary
    shows the alarms of the worker's drift detectors and the model's AUC before, after and at the end.
    """
    return run_demo(
        settings,
        seconds=seconds,
        rate=rate,
        seed=seed,
        keep_stack=keep_stack,
        drift_at=None if no_drift else drift_at,
    )
