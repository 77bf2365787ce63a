"""``hanzo-ml features ...``: look at the feature definitions.

``features list`` prints every feature (aggregates from the definitions, request-time features).
Backfill is not written yet: :func:`backfill_stub` marks the place and no verb is registered for it.
"""

from __future__ import annotations

import argparse
import logging

from rich.console import Console
from rich.table import Table

from config.settings import Settings
from features.definitions import load_definitions
from features.memory_store import InMemoryOnlineStore
from features.store import FeatureStore

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``features list``."""
    parser = sub.add_parser("features", help="feature definitions")
    verbs = parser.add_subparsers(dest="features_command", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="list the features: name, entity, window, aggregation, precision")
    listing.add_argument(
        "--config", default=None, help="features YAML (default: the shipped config/features.yaml)"
    )
    listing.set_defaults(func=list_command)


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


def backfill_stub(args: argparse.Namespace, settings: Settings) -> int:
    """Not written yet: replay a history file through :meth:`FeatureStore.apply_batch` in event-time order."""
    msg = "features backfill is not implemented yet"
    raise NotImplementedError(msg)
