"""Feature-store benchmark: update throughput beside a raw Redis pipeline, read latency, memory per entity.

Run alone as ``.venv/bin/python -m bench.features [--orders N]``; it starts its own redis-server, writes
section ``features`` of ``bench/results.json`` and prints a table. Figures, not pass/fail timings:

- ``update_events_per_s``: :meth:`FeatureStore.apply_batch` of simulated orders, batches of 1,000, on the
  shipped customer definitions (20 features) with the worker's lateness (the longest window);
  ``redis_us_per_event`` is the server's own script time (``INFO commandstats`` ``cmdstat_evalsha``) per
  event, ``redis_us_per_aggregate`` the same per customer aggregate.
- ``redis_pipeline_ceiling_ops_per_s``: in the same run, the same number of pipelined ``HINCRBYFLOAT``
  on as many distinct hashes, 1,000 per round trip (what one command per event costs at best).
- ``get_features_p50_ms`` / ``get_features_p99_ms``: one entity, its 20 features, one round trip.
- ``get_features_batch100_p99_ms``: 100 entities in one call.
- ``bytes_per_entity``: ``MEMORY USAGE`` summed over every key of an entity (hash and dedupe marks), mean
  over the customers.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import redis
from rich.console import Console

from bench.common import latency_ms, print_figures
from bench.results import machine, write_section
from hanzo.ml.config.settings import Settings
from hanzo.ml.features import EventRecord, FeatureStore, RedisOnlineStore, load_definitions
from hanzo.ml.schemas.events import Order
from hanzo.ml.streams.embedded import binary_of, free_port, start_redis, stop_process
from hanzo.ml.streams.runtime import feature_lateness_ms
from hanzo.ml.streams.simulation.config import SimulatorConfig
from hanzo.ml.streams.simulation.generator import Simulator

console = Console()
BATCH = 1000
PREFIX = "bench:"


def _orders(n: int) -> list[EventRecord]:
    sim = Simulator(SimulatorConfig(seed=42, orders=n, customers=max(100, n // 10)))
    orders = [e for e in sim.events() if isinstance(e, Order)]
    return [EventRecord(o, "orders", 0, i) for i, o in enumerate(orders)]


def _evalsha(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def _updates(client: redis.Redis, store: FeatureStore, records: list[EventRecord]) -> dict[str, float]:
    store.apply_batch("customer", records[:BATCH])  # loads the script, warms the connection
    calls0, usec0 = _evalsha(client)
    t0 = time.perf_counter()
    for start in range(BATCH, len(records), BATCH):
        store.apply_batch("customer", records[start : start + BATCH])
    elapsed = time.perf_counter() - t0
    calls, usec = _evalsha(client)
    n = len(records) - BATCH
    return {
        "update_events_per_s": round(n / elapsed),
        "redis_us_per_event": round((usec - usec0) / n, 1),
        "script_calls": calls - calls0,
    }


def _ceiling(client: redis.Redis, n: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + BATCH)):
            pipe.hincrbyfloat(f"{PREFIX}ceiling:{{c{i % 5000}}}", "spend", 1.5)
        pipe.execute()
    return round(n / (time.perf_counter() - t0))


def _reads(store: FeatureStore, customers: list[str], names: list[str]) -> dict[str, float]:
    rng = random.Random(1)
    single = []
    for _ in range(2000):
        cid = rng.choice(customers)
        t0 = time.perf_counter()
        store.get_features(customer_id=cid, features=names)
        single.append(time.perf_counter() - t0)
    batch = []
    for _ in range(200):
        ids = rng.sample(customers, min(100, len(customers)))
        t0 = time.perf_counter()
        store.get_features_batch("customer", ids, features=names)
        batch.append(time.perf_counter() - t0)
    one = latency_ms(single, "get_features_")
    hundred = latency_ms(batch, "get_features_batch100_")
    return {
        "get_features_p50_ms": one["get_features_p50_ms"],
        "get_features_p99_ms": one["get_features_p99_ms"],
        "get_features_batch100_p50_ms": hundred["get_features_batch100_p50_ms"],
        "get_features_batch100_p99_ms": hundred["get_features_batch100_p99_ms"],
    }


def _bytes_per_entity(client: redis.Redis, store: FeatureStore, customers: list[str]) -> int:
    backend = store.backend
    assert isinstance(backend, RedisOnlineStore)
    total = 0
    sample = customers[:500]
    for cid in sample:
        base = backend.entity_key("customer", cid)
        keys = [base, *client.scan_iter(match=f"{base}:d:*", count=1000)]
        total += sum(client.memory_usage(k, samples=0) or 0 for k in keys)
    return round(total / max(1, len(sample)))


def run(n_orders: int) -> dict[str, object]:
    """Measure everything on a redis-server of its own; returns the section."""
    records = _orders(n_orders)
    definitions = load_definitions()
    port = free_port()
    proc = start_redis(port, Path(tempfile.mkdtemp(prefix="bench-features-")))
    try:
        client = redis.Redis(port=port)
        store = FeatureStore(
            definitions,
            backend=RedisOnlineStore(client, PREFIX),
            allowed_lateness_ms=feature_lateness_ms(Settings(), definitions),
        )
        names = [a.name for a in definitions if a.entity == "customer"]
        section: dict[str, object] = {"orders": len(records), "customer_features": len(names)}
        updates = _updates(client, store, records)
        updates["redis_us_per_aggregate"] = round(updates["redis_us_per_event"] / len(names), 2)
        ceiling = _ceiling(client, len(records))
        section |= updates
        section["redis_pipeline_ceiling_ops_per_s"] = ceiling
        section["ratio_vs_pipeline_ceiling"] = round(updates["update_events_per_s"] / ceiling, 3)
        customers = sorted({r.event.customer_id for r in records})
        section |= _reads(store, customers, names)
        section["bytes_per_entity"] = _bytes_per_entity(client, store, customers)
        section["machine"] = machine()
        client.close()
        return section
    finally:
        stop_process(proc.pid, binary_of(proc))


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run, write section ``features`` of bench/results.json, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=30_000, help="simulated orders to apply")
    args = parser.parse_args(argv)
    section = run(args.orders)
    write_section("features", section)
    title = f"features: {section['orders']:,} orders, {section['customer_features']} customer features"
    print_figures(console, title, section)
    return section


if __name__ == "__main__":
    main()
