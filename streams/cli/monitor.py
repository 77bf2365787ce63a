"""``hanzo-ml monitor MODEL`` and ``hanzo-ml report MODEL``: a model's drift and health, read from Redis.

``monitor`` shows the status its worker publishes as tables (once, ``--watch``, or ``--json``); ``report``
writes it as one self-contained HTML file (:mod:`~hanzo.ml.monitor.report`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.monitor.report import build_report
from hanzo.ml.monitor.status import Monitor, MonitorStatus
from hanzo.ml.streams.cli.base import pass_settings, redis_url

logger = logging.getLogger(__name__)


REDIS_URL_HELP = "Redis to read from (default: HANZO_REDIS_URL or the stack)"


def read_status(url: str, model: str, settings: Settings) -> MonitorStatus:
    """The status the worker of ``model`` last published to the Redis at ``url``."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = redis.Redis.from_url(url, password=password, socket_connect_timeout=3, socket_timeout=3)
    try:
        return Monitor.read_status(client, model, key_prefix=settings.key_prefix)
    except (redis.RedisError, OSError) as exc:
        where = url.rsplit("@", 1)[-1]  # never show a password
        msg = f"could not read the monitor status from Redis at {where} ({exc}); is Redis running?"
        raise ServiceUnavailableError(msg) from exc
    finally:
        client.close()


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _flag(drifting: bool) -> str:
    return "[bold red]DRIFT[/bold red]" if drifting else "[green]ok[/green]"


def render_status(status: MonitorStatus, now: datetime | None = None) -> Group:
    """Build the rich tables that show ``status``."""
    now = now or datetime.now(UTC)
    age = (now - status.updated_at).total_seconds()
    summary = Table(title=f"model {status.model}", show_header=False)
    summary.add_row("updated", f"{status.updated_at:%Y-%m-%d %H:%M:%S %Z} ({age:.0f}s ago)")
    summary.add_row("observed / labelled", f"{status.n_observed} / {status.n_labelled}")
    summary.add_row(
        f"{status.metric_name} (rolling)",
        f"{_fmt(status.metric_value, '.4f')}   trend: "
        + " ".join(f"{v:.3f}" for v in status.metric_trend[-10:]),
    )
    summary.add_row("latency p50 / p99", f"{_fmt(status.latency_p50_s)} s / {_fmt(status.latency_p99_s)} s")
    active = [kind for kind, on in status.drift_active.items() if on]
    summary.add_row(
        "drift active", "[bold red]" + ", ".join(active) + "[/bold red]" if active else "[green]none[/]"
    )
    last = status.last_alarm
    summary.add_row(
        "last alarm",
        "-" if last is None else f"{last.at:%Y-%m-%d %H:%M:%S} {last.kind} {last.detector} {last.feature}",
    )

    drift = Table(title="drift")
    drift.add_column("feature", no_wrap=True)
    drift.add_column("test")
    for column in ("stat", "p-value", "p adj.", "alarms"):
        drift.add_column(column, justify="right")
    drift.add_column("state", no_wrap=True)
    for f in status.features:
        drift.add_row(
            f.feature,
            f.test,
            _fmt(f.statistic),
            _fmt(f.p_value),
            _fmt(f.p_value_adjusted),
            str(f.n_alarms),
            _flag(f.drifting),
        )
    for name, d in (
        ("(prediction)", status.prediction_ks),
        ("(prediction)", status.prediction_adwin),
        ("(loss)", status.loss_adwin),
    ):
        drift.add_row(
            name, d.detector, _fmt(d.statistic), _fmt(d.p_value), "-", str(d.n_alarms), _flag(d.drifting)
        )
    return Group(summary, drift)


@click.command("monitor", short_help="Show a model's drift and health status.")
@click.argument("model")
@click.option("--redis-url", "url", default=None, help=REDIS_URL_HELP)
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="refresh every SECONDS")
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@pass_settings
def monitor_command(
    settings: Settings, model: str, url: str | None, watch: float | None, as_json: bool
) -> int:
    """Show MODEL's drift and health status (published by its worker), e.g. churn_prediction."""
    url = redis_url(settings, url)
    console = Console()
    if as_json:
        console.print_json(read_status(url, model, settings).model_dump_json())
        return 0
    if watch is None:
        console.print(render_status(read_status(url, model, settings)))
        return 0
    with Live(render_status(read_status(url, model, settings)), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(max(watch, 0.1))
            live.update(render_status(read_status(url, model, settings)), refresh=True)


@click.command("report", short_help="Write a model's monitoring report as one HTML file.")
@click.argument("model")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write (default: report-MODEL.html)",
)
@click.option("--redis-url", "url", default=None, help=REDIS_URL_HELP)
@pass_settings
def report_command(settings: Settings, model: str, out: Path | None, url: str | None) -> int:
    """Write MODEL's monitoring report (metric trend, predictions, drift alarms) as one HTML file."""
    out = out or Path(f"report-{model}.html")
    if out.is_dir():
        msg = f"--out {out} is a folder; give a file name such as {out / f'report-{model}.html'}"
        raise ConfigError(msg)
    status = read_status(redis_url(settings, url), model, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(status), encoding="utf-8")
    logger.info("report of %s written to %s", model, out)
    Console().print(
        f"report of [bold]{model}[/bold] ({status.n_labelled:,} labels, "
        f"{len(status.recent_alarms)} recent alarms) written to {out}"
    )
    return 0
