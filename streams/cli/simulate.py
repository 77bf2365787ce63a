"""``hanzo-ml simulate``: write a history file or produce the simulated stream to the broker.

The generator lives in :mod:`~hanzo.ml.streams.simulation`. With ``--shop`` the shop floor of
:class:`~hanzo.ml.streams.simulation.shop.ShopSimulator` (demand, search sessions, shopping, a price
experiment) is merged in by event time, as orders and customer events, for the demand forecasting,
recommendations, price optimization and search ranking pipelines.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import pydantic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import err_console, kafka_bootstrap, pass_settings
from hanzo.ml.streams.security import kafka_client_kwargs, security_from
from hanzo.ml.streams.simulation import (
    BGNBD,
    SimulationCounters,
    Simulator,
    SimulatorConfig,
    produce,
    write_jsonl,
)
from hanzo.ml.streams.simulation.generator import Event
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
from hanzo.ml.streams.simulation.shop_events import shop_events

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


@click.command(
    "simulate",
    short_help="Simulate a shop with known fraud: to the broker or a file.",
)
@click.option("--orders", type=int, default=10_000, show_default=True, help="number of orders")
@click.option(
    "--rate", type=float, default=None, help="events/s of wall-clock time when producing (default: max speed)"
)
@click.option("--seed", type=int, default=42, show_default=True, help="random seed")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="write a JSON-lines history file instead of producing",
)
@click.option("--customers", type=int, default=2000, show_default=True, help="customers at the start")
@click.option("--orders-per-day", type=float, default=2000.0, show_default=True, help="event-time order rate")
@click.option("--fraud-rate", type=float, default=0.02, show_default=True, help="target share of fraud")
@click.option(
    "--churn",
    is_flag=True,
    help="customers drop out (BG/NBD), more often after support tickets and refunds (default: none do)",
)
@click.option(
    "--partitions", type=int, default=None, help="partitions of topics it creates (HANZO_PARTITIONS)"
)
@click.option(
    "--shop",
    is_flag=True,
    help="add the shop floor (daily demand, searches, shopping, price visits) for the model families",
)
@click.option("--shop-days", type=int, default=90, show_default=True, help="days of shop floor with --shop")
@click.option(
    "--shop-products", type=int, default=200, show_default=True, help="products of the shop floor with --shop"
)
@pass_settings
def simulate_command(
    settings: Settings,
    orders: int,
    rate: float | None,
    seed: int,
    out: Path | None,
    customers: int,
    orders_per_day: float,
    fraud_rate: float,
    churn: bool,
    partitions: int | None,
    shop: bool,
    shop_days: int,
    shop_products: int,
) -> int:
    """Generate orders, customer events and delayed fraud labels (seeded, with ground truth).

    With --out the stream is written to a JSON-lines history file and no broker is touched; otherwise it is
    produced to the broker (HANZO_KAFKA_BOOTSTRAP or the `hanzo-ml up` stack).
    """
    config = _options(
        SimulatorConfig,
        "simulate",
        seed=seed,
        orders=orders,
        customers=customers,
        orders_per_day=orders_per_day,
        fraud_rate=fraud_rate,
        churn=BGNBD() if churn else None,
    )
    floor: list[Event] = []
    if shop:
        shop_config = _options(
            ShopSimulatorConfig,
            "simulate --shop",
            seed=seed,
            days=shop_days,
            products=shop_products,
            start_time_ms=config.start_time_ms,
        )
        floor = list(shop_events(ShopSimulator(shop_config)))
    sim = Simulator(config)
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders · {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("simulating", total=config.orders, events=0)
        events: Iterator[Event] = _tracked(sim, progress, task)
        if floor:
            events = heapq.merge(events, floor, key=lambda e: e.event_time)
        if out is not None:
            write_jsonl(events, out)
            destination = str(out)
        else:
            bootstrap = kafka_bootstrap(settings)
            topics = {
                "order": settings.topic_orders,
                "customer_event": settings.topic_events,
                "label": settings.topic_labels,
            }
            partitions = partitions or settings.partitions
            client_kwargs = kafka_client_kwargs(security_from(settings))  # TLS / SASL
            asyncio.run(
                produce(
                    events,
                    bootstrap,
                    topics,
                    rate=rate,
                    partitions=partitions,
                    client_kwargs=client_kwargs,
                )
            )
            destination = f"{bootstrap} ({', '.join(topics.values())})"
    results = Console()
    results.print(summary_table(sim.counters, time.monotonic() - started, destination))
    if floor:
        results.print(
            f"shop floor: {len(floor):,} events (orders, searches, clicks, views, price visits) merged in"
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
