"""``hanzo-ml features ...``: look at the feature definitions and backfill the online store.

- ``features list`` prints every feature (aggregates from the definitions, request-time features).
- ``features backfill --data history.jsonl`` (or ``--from-topic``) replays history through
  :meth:`features.FeatureStore.apply_batch` into the configured Redis (:mod:`features.backfill`).
"""

from __future__ import annotations

import argparse
import logging

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

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``features list`` and ``features backfill``."""
    parser = sub.add_parser("features", help="feature definitions and backfill")
    verbs = parser.add_subparsers(dest="features_command", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="list the features: name, entity, window, aggregation, precision")
    listing.add_argument(
        "--config", default=None, help="features YAML (default: the shipped config/features.yaml)"
    )
    listing.set_defaults(func=list_command)
    fill = verbs.add_parser(
        "backfill", help="replay history (a JSONL file or the topics) into the online store"
    )
    source = fill.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="history file, one event per line (hanzo-ml simulate --out)")
    source.add_argument(
        "--from-topic",
        action="store_true",
        help="read the orders and events topics from the beginning (all partitions, nothing committed)",
    )
    fill.add_argument("--config", default=None, help="features YAML (default: the shipped one)")
    fill.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="events per round trip")
    fill.set_defaults(func=backfill_command)


def list_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the feature table."""
    store = FeatureStore(load_definitions(args.config), backend=InMemoryOnlineStore())
    table = Table(title="features")
    for column in ("name", "entity", "window", "aggregation", "precision", "description", "type"):
        table.add_column(column, no_wrap=column != "description")
    for f in store.list_features():
        table.add_row(
            f.name, f.entity, f.window or "-", f.aggregation, f.precision or "-", f.description, f.dtype
        )
    Console().print(table)
    return 0


def backfill_command(args: argparse.Namespace, settings: Settings) -> int:
    """Replay history into Redis with the worker's feature definitions and lateness."""
    from hanzo.ml.streams.embedded import redact_url, resolve_services
    from hanzo.ml.streams.runtime import feature_lateness_ms

    if args.batch_size < 1:
        msg = f"--batch-size {args.batch_size}; give 1 or more"
        raise ConfigError(msg)
    console = Console()
    definitions = load_definitions(args.config)
    if args.from_topic:
        services = resolve_services(settings)
        redis_url, bootstrap = services.redis_url, services.kafka_bootstrap
        topics = [settings.topic_orders, settings.topic_events]
        with console.status(f"reading {', '.join(topics)} from {bootstrap}"):
            records = topic_records(bootstrap, topics)
    else:
        redis_url = settings.redis_url or resolve_services(settings).redis_url
        with console.status(f"reading {args.data}"):
            records = history_records(args.data)
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
        report = backfill(
            store, records, batch_size=args.batch_size, progress=lambda n: progress.advance(task, n)
        )
    table = Table(title=f"backfill into {redact_url(redis_url)} (prefix {settings.key_prefix!r})")
    for column in ("entity", "applied", "duplicate", "fenced", "late"):
        table.add_column(column, justify="right" if column != "entity" else "left")
    for entity, counts in report.statuses.items():
        table.add_row(entity, *(str(counts.get(s, 0)) for s in ("applied", "duplicate", "fenced", "late")))
    console.print(table)
    console.print(f"{report.events} events in {report.batches} batches")
    client.close()
    return 0
