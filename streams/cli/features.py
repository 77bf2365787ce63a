"""``hanzo-ml features list | backfill``: look at the feature definitions and backfill the online store.

- ``features list`` prints every feature (aggregates from the definitions, request-time features).
- ``features backfill --data history.jsonl`` (or ``--from-topic``) replays history through
  :meth:`~hanzo.ml.features.FeatureStore.apply_batch` into the configured Redis
  (:mod:`~hanzo.ml.features.backfill`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.config.settings import Settings
from hanzo.ml.features.backfill import DEFAULT_BATCH_SIZE, backfill, history_records, topic_records
from hanzo.ml.features.definitions import load_definitions
from hanzo.ml.features.memory_store import InMemoryOnlineStore
from hanzo.ml.features.redis_store import RedisOnlineStore
from hanzo.ml.features.store import FeatureStore
from hanzo.ml.streams.cli.base import pass_settings
from hanzo.ml.streams.cli.base import redis_url as redis_url_of
from hanzo.ml.streams.embedded import resolve_services
from hanzo.ml.streams.runtime import feature_lateness_ms
from hanzo.ml.streams.security import redact_url

logger = logging.getLogger(__name__)


CONFIG_HELP = "features YAML (default: the shipped config/features.yaml)"


@click.group("features")
def features_group() -> None:
    """Feature definitions and backfill."""


@features_group.command("list")
@click.option("--config", type=click.Path(path_type=Path), default=None, help=CONFIG_HELP)
@pass_settings
def list_command(settings: Settings, config: Path | None) -> int:
    """List the features: name, entity, window, aggregation, precision."""
    store = FeatureStore(load_definitions(config), backend=InMemoryOnlineStore())
    table = Table(title="features")
    for column in ("name", "entity", "window", "aggregation", "precision", "description", "type"):
        table.add_column(column, no_wrap=column != "description")
    for f in store.list_features():
        table.add_row(
            f.name, f.entity, f.window or "-", f.aggregation, f.precision or "-", f.description, f.dtype
        )
    Console().print(table)
    return 0


@features_group.command("backfill")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="history file, one event per line (hanzo-ml simulate --out)",
)
@click.option(
    "--from-topic",
    is_flag=True,
    help="read the orders and events topics from the beginning (all partitions, nothing committed)",
)
@click.option("--config", type=click.Path(path_type=Path), default=None, help=CONFIG_HELP)
@click.option(
    "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True, help="events per round trip"
)
@pass_settings
def backfill_command(
    settings: Settings, data: Path | None, from_topic: bool, config: Path | None, batch_size: int
) -> int:
    """Replay history (a JSONL file or the topics) into the online store.

    Uses the worker's feature definitions and allowed lateness, so the values equal what the worker writes.
    """
    if (data is not None) == from_topic:
        msg = "give one source: --data FILE or --from-topic"
        raise click.UsageError(msg)
    if batch_size < 1:
        msg = f"--batch-size {batch_size}; give 1 or more"
        raise ConfigError(msg)
    console = Console()
    definitions = load_definitions(config)
    if data is None:  # --from-topic
        services = resolve_services(settings)
        redis_url, bootstrap = services.redis_url, services.kafka_bootstrap
        topics = [settings.topic_orders, settings.topic_events]
        with console.status(f"reading {', '.join(topics)} from {bootstrap}"):
            records = topic_records(bootstrap, topics)
    else:
        redis_url = redis_url_of(settings)
        with console.status(f"reading {data}"):
            records = history_records(data)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = redis.Redis.from_url(redis_url, password=password, socket_timeout=30)
    store = FeatureStore(
        definitions,
        backend=RedisOnlineStore(client, key_prefix=settings.key_prefix),
        allowed_lateness_ms=feature_lateness_ms(settings, definitions),
    )
    columns = (
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("backfill", total=len(records))
        report = backfill(store, records, batch_size=batch_size, progress=lambda n: progress.advance(task, n))
    table = Table(title=f"backfill into {redact_url(redis_url)} (prefix {settings.key_prefix!r})")
    for column in ("entity", "applied", "duplicate", "fenced", "late"):
        table.add_column(column, justify="right" if column != "entity" else "left")
    for entity, counts in report.statuses.items():
        table.add_row(entity, *(str(counts.get(s, 0)) for s in ("applied", "duplicate", "fenced", "late")))
    console.print(table)
    console.print(f"{report.events} events in {report.batches} batches")
    client.close()
    return 0
