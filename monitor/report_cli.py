"""The ``hanzo-ml report MODEL`` verb: write a model's monitoring status as a self-contained HTML file."""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

import redis
from rich.console import Console

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.monitor.report import build_report
from hanzo.ml.monitor.status import Monitor

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the verb ``report``."""
    p = sub.add_parser(
        "report",
        help="write a model's monitoring report (metric trend, predictions, drift alarms) as one HTML file",
    )
    p.add_argument("model", help="model name, e.g. fraud_detection")
    p.add_argument("--out", type=Path, default=None, help="HTML file to write (default: report-MODEL.html)")
    p.add_argument(
        "--redis-url", default=None, help="Redis to read from (default: HANZO_REDIS_URL or the stack)"
    )
    p.set_defaults(func=run_report)


def redis_url(explicit: str | None, settings: Settings) -> str:
    """``explicit``, else ``settings.redis_url``, else the Redis of the embedded stack."""
    if explicit:
        return explicit
    if settings.redis_url:
        return settings.redis_url
    embedded = importlib.import_module("hanzo.ml.streams.embedded")
    return str(embedded.resolve_services(settings).redis_url)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """Read the status of ``args.model`` from Redis and write the HTML report."""
    url = redis_url(args.redis_url, settings)
    out: Path = args.out or Path(f"report-{args.model}.html")
    if out.is_dir():
        msg = f"--out {out} is a folder; give a file name such as {out / f'report-{args.model}.html'}"
        raise ConfigError(msg)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = redis.Redis.from_url(url, password=password, socket_connect_timeout=3, socket_timeout=3)
    try:
        status = Monitor.read_status(client, args.model, key_prefix=settings.key_prefix)
    except (redis.RedisError, OSError) as exc:
        where = url.rsplit("@", 1)[-1]  # never show a password
        msg = f"could not read the monitor status from Redis at {where} ({exc}); is Redis running?"
        raise ServiceUnavailableError(msg) from exc
    finally:
        client.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(status), encoding="utf-8")
    logger.info("report of %s written to %s", args.model, out)
    Console().print(
        f"report of [bold]{args.model}[/bold] ({status.n_labelled:,} labels, "
        f"{len(status.recent_alarms)} recent alarms) written to {out}"
    )
    return 0
