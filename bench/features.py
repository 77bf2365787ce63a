"""Feature-store benchmark: update throughput beside a raw Redis pipeline, read latency, memory per entity.

Run alone as ``.venv/bin/python -m bench.features [--orders N]``; it starts its own redis-server, writes
section ``features`` of ``bench/results.json`` and prints a table. Figures, not pass/fail timings:

- ``update_events_per_s``: :meth:`FeatureStore.apply_batch` of simulated orders, batches of 1,000, on the
  shipped customer definitions (20 features) with the worker's lateness (the longest window);
  ``redis_us_per_event`` is the server's own script time (``INFO commandstats`` ``cmdstat_evalsha``) per
  event, ``redis_us_per_aggregate`` the same per customer aggregate. ``redis_cpu_us_per_event`` is the
  server's whole CPU time (``INFO cpu``: scripts, parsing the calls, writing the replies) per event,
  ``client_cpu_us_per_event`` this process's (``time.process_time``: inputs, packing, redis-py, results;
  the pre-built orders are frozen out of the garbage collector first, ``gc.freeze``, as the worker does),
  ``wall_us_per_event`` the wall time; with both sides busy at once the wall time is near the larger
  of the two CPU times (the update calls stream: the client makes the next ones while Redis runs).
- ``redis_pipeline_ceiling_ops_per_s``: in the same run, the same number of pipelined ``HINCRBYFLOAT``
  on as many distinct hashes, 1,000 per round trip (what one command per event costs at best).
- ``get_features_p50_ms`` / ``get_features_p99_ms``: one entity, its 20 features, one round trip.
- ``get_features_batch100_p99_ms``: 100 entities in one call.
- ``bytes_per_entity``: ``MEMORY USAGE`` summed over every key of an entity (hash, archives and dedupe
  marks), mean over the customers.
- ``hot_entity_redis_us_per_update_day1`` / ``..._day90``: one customer with an order every minute of
  event time for 90 days (129,600 orders, the shipped definitions and lateness, batches of 1,000), the
  server's script time per update over day 1 and over day 90; ``hot_entity_growth_ratio`` is day 90 over
  day 1 (1.0: the cost does not grow with history; what a group rewrites per event is its window, so the
  cost rises until the longest window has filled, ``hot_entity_growth_ratio_day30`` is day 90 over day
  30); ``hot_entity_wall_us_per_update_*`` the same in wall time, ``hot_entity_bytes`` the entity's keys
  at the end (the archives hold every bucket of the 90-day lateness: per minute for the ``1h`` window).
"""

from __future__ import annotations

import argparse
import gc
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


def _server_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _updates(client: redis.Redis, store: FeatureStore, records: list[EventRecord]) -> dict[str, float]:
    store.apply_batch("customer", records[:BATCH])  # loads the script, warms the connection
    # The orders are built before the clock starts; a full collection walking them (250-320 ms, 8-11 us an
    # event) is this harness's cost, not the store's: freeze them, as the worker freezes its start-up objects.
    gc.collect()
    gc.freeze()
    calls0, usec0 = _evalsha(client)
    server0, client0 = _server_cpu_s(client), time.process_time()
    t0 = time.perf_counter()
    for start in range(BATCH, len(records), BATCH):
        store.apply_batch("customer", records[start : start + BATCH])
    elapsed = time.perf_counter() - t0
    server, own = _server_cpu_s(client) - server0, time.process_time() - client0
    gc.unfreeze()
    calls, usec = _evalsha(client)
    n = len(records) - BATCH
    return {
        "update_events_per_s": round(n / elapsed),
        "redis_us_per_event": round((usec - usec0) / n, 1),
        "redis_cpu_us_per_event": round(server * 1e6 / n, 1),
        "client_cpu_us_per_event": round(own * 1e6 / n, 1),
        "wall_us_per_event": round(elapsed * 1e6 / n, 1),
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
        keys = [base, *client.scan_iter(match=f"{base}:[dz]:*", count=1000)]
        total += sum(client.memory_usage(k, samples=0) or 0 for k in keys)
    return round(total / max(1, len(sample)))


def _hot_entity(client: redis.Redis, store: FeatureStore, days: int) -> dict[str, float]:
    """One customer, an order a minute of event time for ``days`` days: cost per update by day of it."""
    sim = Simulator(SimulatorConfig(seed=1, orders=2000, customers=200))
    proto = [e for e in sim.events() if isinstance(e, Order)][:1000]
    t0 = proto[0].event_time
    n = days * 1440
    per_day: dict[int, list[tuple[float, float, int]]] = {}
    for start in range(0, n, BATCH):
        records = [
            EventRecord(
                proto[j % len(proto)].model_copy(
                    update={"customer_id": "hot", "order_id": f"hot-{j}", "event_time": t0 + j * 60_000}
                ),
                "orders",
                9,
                j,
            )
            for j in range(start, min(n, start + BATCH))
        ]
        _, usec0 = _evalsha(client)
        w0 = time.perf_counter()
        store.apply_batch("customer", records)
        wall = time.perf_counter() - w0
        _, usec = _evalsha(client)
        per_day.setdefault(start // 1440, []).append((usec - usec0, wall * 1e6, len(records)))

    def mean(day: int, part: int) -> float:
        rows = per_day[day]
        return sum(r[part] for r in rows) / sum(r[2] for r in rows)

    backend = store.backend
    assert isinstance(backend, RedisOnlineStore)
    base = backend.entity_key("customer", "hot")
    keys = [base, *client.scan_iter(match=f"{base}:z:*", count=1000)]
    first, last = 1, days - 1
    out = {
        "hot_entity_orders": n,
        f"hot_entity_redis_us_per_update_day{first}": round(mean(first, 0), 1),
        f"hot_entity_redis_us_per_update_day{last + 1}": round(mean(last, 0), 1),
        f"hot_entity_wall_us_per_update_day{first}": round(mean(first, 1), 1),
        f"hot_entity_wall_us_per_update_day{last + 1}": round(mean(last, 1), 1),
        "hot_entity_growth_ratio": round(mean(last, 0) / mean(first, 0), 2),
        # the 30d windows are full from day 30: what is left of the growth is theirs, not the history's
        **(
            {
                "hot_entity_redis_us_per_update_day30": round(mean(29, 0), 1),
                "hot_entity_growth_ratio_day30": round(mean(last, 0) / mean(29, 0), 2),
            }
            if days > 30
            else {}
        ),
        "hot_entity_bytes": sum(client.memory_usage(k, samples=0) or 0 for k in keys),
    }
    return out


def run(n_orders: int, hot_days: int = 90) -> dict[str, object]:
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
        if hot_days > 1:
            section |= _hot_entity(client, store, hot_days)
        section["machine"] = machine()
        client.close()
        return section
    finally:
        stop_process(proc.pid, binary_of(proc))


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run, write section ``features`` of bench/results.json, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=30_000, help="simulated orders to apply")
    parser.add_argument(
        "--hot-days", type=int, default=90, help="days of event time of the hot customer (0: skip)"
    )
    args = parser.parse_args(argv)
    section = run(args.orders, args.hot_days)
    write_section("features", section)
    title = f"features: {section['orders']:,} orders, {section['customer_features']} customer features"
    print_figures(console, title, section)
    return section


if __name__ == "__main__":
    main()
