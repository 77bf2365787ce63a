"""The commerce simulator's public face and the ``hanzo-ml simulate`` verb.

The generator lives in :mod:`streams.simulation`; this module re-exports it and adds the command that
writes a history file or produces the stream to the broker. With ``--shop`` the shop floor of
:class:`~streams.simulation.shop.ShopSimulator` (demand, search sessions, shopping, a price experiment) is
merged in by event time, as orders and customer events (:mod:`streams.simulation.shop_events`), for the
demand forecasting, recommendations, price optimization and search ranking pipelines.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.security import kafka_client_kwargs, security_from
from hanzo.ml.streams.simulation import (
    DriftSpec,
    ProduceStats,
    SimulationCounters,
    Simulator,
    SimulatorConfig,
    event_key,
    produce,
    read_jsonl,
    write_jsonl,
)
from hanzo.ml.streams.simulation.generator import Event
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
from hanzo.ml.streams.simulation.shop_events import shop_events

logger = logging.getLogger(__name__)

__all__ = [
    "DriftSpec",
    "ProduceStats",
    "SimulationCounters",
    "Simulator",
    "SimulatorConfig",
    "add_commands",
    "event_key",
    "produce",
    "read_jsonl",
    "write_jsonl",
]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``hanzo-ml simulate``."""
    p = sub.add_parser(
        "simulate",
        help="generate a commerce stream with known fraud: to the broker, or to a file with --out",
        description=(
            "Generate orders, customer events and delayed fraud labels (seeded, with ground truth). "
            "With --out the stream is written to a JSON-lines history file and no broker is touched; "
            "otherwise it is produced to the broker (HANZO_KAFKA_BOOTSTRAP or the `hanzo-ml up` stack)."
        ),
    )
    p.add_argument("--orders", type=int, default=10_000, help="number of orders (default 10000)")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s of wall-clock time when producing (default: max speed)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--out", type=Path, default=None, help="write a JSON-lines history file instead of producing"
    )
    p.add_argument("--customers", type=int, default=2000, help="customers at the start (default 2000)")
    p.add_argument(
        "--orders-per-day", type=float, default=2000.0, help="event-time order rate (default 2000)"
    )
    p.add_argument("--fraud-rate", type=float, default=0.02, help="target share of fraud (default 0.02)")
    p.add_argument(
        "--partitions", type=int, default=None, help="partitions of topics it creates (HANZO_PARTITIONS)"
    )
    p.add_argument(
        "--shop",
        action="store_true",
        help="add the shop floor (daily demand, searches, shopping, price visits) for the model families",
    )
    p.add_argument("--shop-days", type=int, default=90, help="days of shop floor with --shop (default 90)")
    p.add_argument(
        "--shop-products", type=int, default=200, help="products of the shop floor with --shop (default 200)"
    )
    p.set_defaults(func=simulate_command)


M = TypeVar("M", bound=pydantic.BaseModel)


def _options(model: type[M], command: str, **values: Any) -> M:
    """``model(**values)``; a bad value fails as a ConfigError naming the option, the value and the rule."""
    try:
        return model(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}" for e in exc.errors()
        )
        msg = f"bad {command} option: {problems}"
        raise ConfigError(msg) from None


def simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``hanzo-ml simulate``; returns the exit code."""
    config = _options(
        SimulatorConfig,
        "simulate",
        seed=args.seed,
        orders=args.orders,
        customers=args.customers,
        orders_per_day=args.orders_per_day,
        fraud_rate=args.fraud_rate,
    )
    shop: list[Event] = []
    if getattr(args, "shop", False):
        shop_config = _options(
            ShopSimulatorConfig,
            "simulate --shop",
            seed=args.seed,
            days=args.shop_days,
            products=args.shop_products,
            start_time_ms=config.start_time_ms,
        )
        shop = list(shop_events(ShopSimulator(shop_config)))
    sim = Simulator(config)
    console = Console(stderr=True)
    out = Console()
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders · {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("simulating", total=config.orders, events=0)
        events: Iterator[Event] = _tracked(sim, progress, task)
        if shop:
            events = heapq.merge(events, shop, key=lambda e: e.event_time)
        if args.out is not None:
            write_jsonl(events, args.out)
            destination = str(args.out)
        else:
            bootstrap = _bootstrap(settings)
            topics = {
                "order": settings.topic_orders,
                "customer_event": settings.topic_events,
                "label": settings.topic_labels,
            }
            partitions = args.partitions or settings.partitions
            client_kwargs = kafka_client_kwargs(security_from(settings))  # TLS / SASL
            asyncio.run(
                produce(
                    events,
                    bootstrap,
                    topics,
                    rate=args.rate,
                    partitions=partitions,
                    client_kwargs=client_kwargs,
                )
            )
            destination = f"{bootstrap} ({', '.join(topics.values())})"
    out.print(summary_table(sim.counters, time.monotonic() - started, destination))
    if shop:
        out.print(
            f"shop floor: {len(shop):,} events (orders, searches, clicks, views, price visits) merged in"
        )
    return 0


def _tracked(sim: Simulator, progress: Progress, task: TaskID) -> Iterator[Event]:
    counters = sim.counters
    for i, event in enumerate(sim.events(), start=1):
        if i % 2000 == 0:
            counters = sim.counters
            progress.update(task, completed=counters.orders, events=i)
        yield event
    progress.update(task, completed=sim.counters.orders, events=sim.counters.events)


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from hanzo.ml.streams.embedded import resolve_services  # raises ServiceUnavailableError saying what to do

    return resolve_services(settings).kafka_bootstrap


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def summary_table(counters: SimulationCounters, wall_seconds: float, destination: str) -> Table:
    """Build the table ``hanzo-ml simulate`` prints at the end.

    Examples
    --------
    >>> t = summary_table(SimulationCounters(orders=10, fraud_orders=1, events=30), 1.5, "h.jsonl")
    >>> t.row_count > 5
    True
    """
    table = Table(title="simulation", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    span_days = 0.0
    if counters.first_event_time is not None and counters.last_event_time is not None:
        span_days = (counters.last_event_time - counters.first_event_time) / 86_400_000
    by_type = ", ".join(f"{k} {v:,}" for k, v in sorted(counters.events_by_type.items()))
    rows = [
        ("destination", destination),
        ("orders", f"{counters.orders:,}"),
        ("fraud orders", f"{counters.fraud_orders:,} ({counters.fraud_share:.2%})"),
        (
            "  fake accounts / takeovers",
            f"{counters.fake_account_orders:,} / {counters.account_takeover_orders:,}",
        ),
        ("labels", f"{counters.labels:,}"),
        ("customer events", f"{counters.customer_events:,}"),
        ("  by type", by_type or "-"),
        ("events", f"{counters.events:,}"),
        (
            "event time",
            f"{_iso(counters.first_event_time)} → {_iso(counters.last_event_time)} ({span_days:.1f} d)",
        ),
        ("wall time", f"{wall_seconds:.1f} s"),
        ("events/s", f"{counters.events / wall_seconds:,.0f}" if wall_seconds > 0 else "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
