"""The ``hanzo-ml monitor MODEL`` verb: a model's drift and health status, read from Redis, as tables."""

from __future__ import annotations

import argparse
import importlib
import logging
import time
from datetime import UTC, datetime

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.monitor.status import Monitor, MonitorStatus

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the verb ``monitor``."""
    p = sub.add_parser("monitor", help="show a model's drift and health status (published by its worker)")
    p.add_argument("model", help="model name, e.g. churn_prediction")
    p.add_argument(
        "--redis-url", default=None, help="Redis to read from (default: HANZO_REDIS_URL or the stack)"
    )
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS", help="refresh every SECONDS")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=run_monitor)


def _redis_url(args: argparse.Namespace, settings: Settings) -> str:
    if args.redis_url:
        return str(args.redis_url)
    if settings.redis_url:
        return settings.redis_url
    try:
        embedded = importlib.import_module("hanzo.ml.streams.embedded")
    except ModuleNotFoundError:
        embedded = None
    resolve = getattr(embedded, "resolve_services", None)
    if resolve is None:
        msg = "no Redis configured: set HANZO_REDIS_URL or pass --redis-url"
        raise ServiceUnavailableError(msg)
    return str(resolve(settings).redis_url)


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


def run_monitor(args: argparse.Namespace, settings: Settings) -> int:
    """Show the status of ``args.model`` once, or every ``args.watch`` seconds until Ctrl-C."""
    url = _redis_url(args, settings)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = redis.Redis.from_url(url, password=password, socket_connect_timeout=3, socket_timeout=3)
    console = Console()

    def read() -> MonitorStatus:
        try:
            return Monitor.read_status(client, args.model, key_prefix=settings.key_prefix)
        except (redis.RedisError, OSError) as exc:
            where = url.rsplit("@", 1)[-1]  # never show a password
            msg = f"could not read the monitor status from Redis at {where} ({exc}); is Redis running?"
            raise ServiceUnavailableError(msg) from exc

    try:
        if args.json:
            console.print_json(read().model_dump_json())
            return 0
        if args.watch is None:
            console.print(render_status(read()))
            return 0
        with Live(render_status(read()), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(max(args.watch, 0.1))
                live.update(render_status(read()), refresh=True)
    finally:
        client.close()
