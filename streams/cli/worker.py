"""``hanzo-ml worker``: run the stream worker of :mod:`~hanzo.ml.streams.worker` in the foreground."""

from __future__ import annotations

from typing import Any

import click

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import pass_settings
from hanzo.ml.streams.worker import run_worker


@click.command("worker", short_help="Run the stream worker: features, scoring, learning, snapshots.")
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="NAME|FILE",
    help="pipeline to run (repeatable; default: fraud_detection)",
)
@click.option("--web-port", type=int, default=None, help="HTTP port (default HANZO_WEB_PORT or 6066)")
@click.option(
    "--metrics-port", type=int, default=None, help="/metrics port (default HANZO_METRICS_PORT or 9464)"
)
@click.option(
    "--role",
    type=click.Choice(["all", "score", "learn"]),
    default=None,
    help="all: score, and learn while holding the learner lease; score: never learn, follow the registry; "
    "learn: score nothing, learn while holding the lease (default HANZO_ROLE or all)",
)
@pass_settings
def worker_command(
    settings: Settings,
    pipelines: tuple[str, ...],
    web_port: int | None,
    metrics_port: int | None,
    role: str | None,
) -> int:
    """Run the stream worker (features, scoring, learning, snapshots) until SIGTERM or Ctrl-C."""
    updates: dict[str, Any] = {}
    if role is not None:
        updates["role"] = role
    if web_port is not None:
        updates["web_port"] = web_port
    if metrics_port is not None:
        updates["metrics_port"] = metrics_port
    if updates:
        settings = settings.model_copy(update=updates)
    return run_worker(settings, list(pipelines) or ["fraud_detection"])
