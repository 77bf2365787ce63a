"""Backfill from a history file gives the same features as the live path, and both match a recomputation."""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from hanzo.ml.config.settings import Settings
from hanzo.ml.features import EventRecord, FeatureStore, RedisOnlineStore, load_definitions
from hanzo.ml.features.backfill import history_records, merge_by_event_time
from hanzo.ml.schemas.events import CustomerEvent, Order
from hanzo.ml.schemas.jsonl import write_jsonl
from hanzo.ml.streams.cli import run
from hanzo.ml.streams.runtime import feature_lateness_ms
from hanzo.ml.streams.simulation.config import SimulatorConfig
from hanzo.ml.streams.simulation.generator import Simulator

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
PARTITIONS = 4


def kafka_like(events: list[Order | CustomerEvent], topic: str) -> list[EventRecord]:
    """Key by customer into partitions with offsets; a consumer sees partitions interleaved by time."""
    parts: dict[int, list[EventRecord]] = defaultdict(list)
    for e in events:
        p = zlib.crc32(e.customer_id.encode()) % PARTITIONS
        parts[p].append(EventRecord(e, topic, p, len(parts[p])))
    return merge_by_event_time(parts.values())


def in_window(ts: int, as_of: int, bucket: int, n_buckets: int) -> bool:
    hi = as_of // bucket
    return hi - n_buckets < ts // bucket <= hi


def test_backfill_from_file_equals_live_and_recomputation(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sim = Simulator(SimulatorConfig(seed=11, orders=1500, customers=300, products=60))
    events = [e for e in sim.events() if isinstance(e, Order | CustomerEvent)]
    definitions = load_definitions()
    lateness = feature_lateness_ms(Settings(), definitions)

    # (a) live: Kafka-like records with offsets, one apply_batch per entity and batch, as the worker does
    live = FeatureStore(
        definitions,
        backend=RedisOnlineStore(redis_client, f"{key_prefix}live:"),
        allowed_lateness_ms=lateness,
    )
    records = kafka_like(events, "orders")
    for start in range(0, len(records), 500):
        for entity in live.entities:
            statuses = {r.status for r in live.apply_batch(entity, records[start : start + 500])}
            assert statuses <= {"applied"}

    # (b) backfill of the same events from a history file, through the CLI verb, into another prefix
    history = tmp_path / "history.jsonl"
    write_jsonl(sim.events(), history)  # labels included: backfill skips them
    settings = Settings(redis_url=redis_url, key_prefix=f"{key_prefix}fill:")
    argv = ["features", "backfill", "--data", str(history), "--batch-size", "700"]
    assert run(argv, settings) == 0
    filled = FeatureStore(
        definitions,
        backend=RedisOnlineStore(redis_client, f"{key_prefix}fill:"),
        allowed_lateness_ms=lateness,
    )
    assert len(history_records(history)) == len(events)

    # independent recomputation, as of each entity's latest event time
    by_customer: dict[str, list[Order | CustomerEvent]] = defaultdict(list)
    units: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e in events:
        by_customer[e.customer_id].append(e)
        if isinstance(e, Order):
            for item in e.items:
                units[item.product_id].append((e.event_time, item.quantity))
    product_latest: dict[str, int] = {}
    for e in events:  # a product's latest event: orders holding it, page views naming it
        ids = [i.product_id for i in e.items] if isinstance(e, Order) else [e.product_id]
        for pid in ids:
            if pid is not None:
                product_latest[pid] = max(product_latest.get(pid, 0), e.event_time)

    customers = sorted(by_customer)
    features = [
        "orders_24h",
        "spend_7d",
        "lifetime_spend",
        "orders_lifetime",
        "distinct_payment_methods_30d",
        "support_tickets_30d",
        "mean_order_value_30d",
    ]
    got_live = live.get_features_batch("customer", customers)
    got_fill = filled.get_features_batch("customer", customers)
    assert got_live == got_fill  # identical, not approximately
    checked = 0
    for cid, row in zip(customers, got_live, strict=True):
        evs = by_customer[cid]
        t = max(e.event_time for e in evs)
        orders = [e for e in evs if isinstance(e, Order)]
        month = [o for o in orders if in_window(o.event_time, t, DAY, 30)]
        want = {
            "orders_24h": float(sum(in_window(o.event_time, t, 15 * MIN, 96) for o in orders)),
            "spend_7d": sum(o.total for o in orders if in_window(o.event_time, t, HOUR, 168)),
            "lifetime_spend": sum(o.total for o in orders),
            "orders_lifetime": float(len(orders)),
            "distinct_payment_methods_30d": float(len({o.payment_method for o in month})),
            "support_tickets_30d": float(
                sum(
                    isinstance(e, CustomerEvent)
                    and e.type == "support_ticket"
                    and in_window(e.event_time, t, DAY, 30)
                    for e in evs
                )
            ),
            "mean_order_value_30d": sum(o.total for o in month) / len(month) if month else None,
        }
        for name in features:
            expected = want[name] if want[name] is None else pytest.approx(want[name], rel=1e-9, abs=1e-9)
            assert row[name] == expected, (cid, name)
            checked += 1
    assert checked == len(customers) * len(features) and sum(r["orders_lifetime"] for r in got_live) == 1500

    products = sorted(units)
    live_p = live.get_features_batch("product", products, features=["units_sold_24h", "units_sold_7d"])
    fill_p = filled.get_features_batch("product", products, features=["units_sold_24h", "units_sold_7d"])
    assert live_p == fill_p
    for pid, row in zip(products, live_p, strict=True):
        t = product_latest[pid]
        assert row["units_sold_24h"] == float(
            sum(q for ts, q in units[pid] if in_window(ts, t, 15 * MIN, 96))
        ), pid
        assert row["units_sold_7d"] == float(sum(q for ts, q in units[pid] if in_window(ts, t, HOUR, 168)))

    # a second backfill of the same file changes nothing: every event is a duplicate by its id
    assert run(argv, settings) == 0
    assert filled.get_features_batch("customer", customers) == got_fill
