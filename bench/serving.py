"""Serving latency: Redis score lookups, Python-API predictions, HTTP predictions at a fixed rate, reloads.

Starts its own redis-server and Tansu broker, loads the features of a few thousand simulated customers
through the feature store (Redis backend), trains the shipped ``fraud_detection`` pipeline on the same
orders and registers it, then measures:

* ``lookup_p50_ms`` / ``lookup_p99_ms``: :meth:`ServingEngine.lookup_score` (one ``GET`` + JSON);
* ``predict_p50_ms_cN`` / ``predict_p99_ms_cN``: ``await engine.apredict(...)`` with N = 1, 16, 64
  concurrent callers in a closed loop (each sends its next request when the previous one is answered);
  request-time values vary, so the prediction cache almost never hits;
* ``http_predict_p50_ms_500rps`` / ``http_predict_p99_ms_500rps``: ``POST /predict/fraud_detection`` to
  a serving worker (``bench.serving_server``, a Faust app) at a fixed open-loop rate from a separate
  process (``bench.serving_sender``, one distinct body per request); latency from each request's
  scheduled send time, so queueing and the sender's own lateness count;
* ``snapshot_ms``: ``Registry.register`` of the trained model; ``reload_ms``: ``engine.reload`` after a
  promotion (manifest read, verified load, swap).

Run alone: ``.venv/bin/python -m bench.serving``; it updates only the ``serving`` section of
``bench/results.json``. Targets (reported, not asserted): lookup p99 <= 0.5 ms, predict p99 <= 5 ms at 64
concurrent callers, HTTP p99 <= 10 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from rich.console import Console
from rich.table import Table

from bench.common import latency_ms
from bench.results import machine, write_section
from hanzo.ml.features import EventRecord, FeatureStore, RedisOnlineStore, raw_features
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.keys import score_key
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry, RegistryReader
from hanzo.ml.schemas.events import Label, Order
from hanzo.ml.streams.embedded import binary_of, free_port, start_broker, start_redis, stop_process
from hanzo.ml.streams.runtime import resolve_spec_path
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig

console = Console()
PREFIX = "bench:"
TARGETS = {"lookup_p99_ms": 0.5, "predict_p99_ms_c64": 5.0, "http_predict_p99_ms_500rps": 10.0}


def load(store: FeatureStore, client: redis.Redis, spec: PipelineSpec, orders: int, customers: int
         ) -> tuple[OnlineLearner, list[str], list[str]]:
    """Apply simulated orders and events to the store, write score records, train the model on them."""
    learner = OnlineLearner(spec.name, build_model(spec), task=spec.model.task)
    sim = Simulator(SimulatorConfig(seed=5, orders=orders, customers=customers, orders_per_day=4000,
                                    browse_events_per_order=0.5))
    names = list(spec.data.features)
    customer_ids: set[str] = set()
    order_ids: list[str] = []
    batch: list[EventRecord] = []

    def flush() -> None:
        results = store.apply_batch("customer", batch)
        pipe = client.pipeline(transaction=False)
        for rec, res in zip(batch, results, strict=True):
            event = rec.event
            if not isinstance(event, Order):
                continue
            available = {**res.features, **raw_features(event)}
            x = {n: available[n] for n in names if available.get(n) is not None}
            score = learner.score(x)
            learner.learn_one(x, sim.is_fraud(event.order_id))
            record = {"score": score, "model": spec.name, "version": "bench", "examples": 0,
                      "scored_at_ms": int(time.time() * 1000), "event_time_ms": event.event_time}
            pipe.set(score_key(spec.name, event.order_id, PREFIX), json.dumps(record), ex=3600)
            customer_ids.add(event.customer_id)
            order_ids.append(event.order_id)
        pipe.execute()
        batch.clear()

    for event in sim.events():
        if isinstance(event, Label):
            continue
        batch.append(EventRecord(event))
        if len(batch) >= 2000:
            flush()
    if batch:
        flush()
    return learner, sorted(customer_ids), order_ids


def measure_lookups(engine: ServingEngine, model: str, order_ids: list[str], n: int) -> list[float]:
    """Latency of ``n`` score lookups of random orders."""
    rng = random.Random(1)
    for oid in order_ids[:200]:
        engine.lookup_score(model, oid)
    out = []
    for _ in range(n):
        oid = rng.choice(order_ids)
        t = time.perf_counter()
        record = engine.lookup_score(model, oid)
        out.append(time.perf_counter() - t)
        assert record is not None
    return out


def request(rng: random.Random, customers: list[str]) -> dict[str, Any]:
    """One predict request: a customer and the order being scored."""
    return {"customer_id": rng.choice(customers), "order_total": round(rng.uniform(5, 500), 2),
            "payment_method": rng.choice(["card", "paypal", "gift_card"]),
            "country_mismatch": float(rng.random() < 0.05), "account_age_days": rng.uniform(1, 900)}


async def measure_predicts(engine: ServingEngine, model: str, customers: list[str], concurrency: int,
                           seconds: float) -> tuple[list[float], float]:
    """Closed-loop latencies with ``concurrency`` callers for ``seconds``; also the mean batch size."""
    latencies: list[float] = []
    batches0 = engine.batches
    deadline = time.perf_counter() + seconds

    async def caller(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            r = request(rng, customers)
            t = time.perf_counter()
            await engine.apredict(model=model, features=r)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    batches = engine.batches - batches0
    return latencies, len(latencies) / max(1, batches)


async def measure_reloads(engine: ServingEngine, registry: Registry, learner: OnlineLearner, name: str,
                          features: list[str], n: int) -> tuple[list[float], list[float]]:
    """Register-then-promote ``n`` snapshots; time each ``register`` and each ``engine.reload``."""
    snapshots, reloads = [], []
    for _ in range(n):
        t = time.perf_counter()
        v = registry.register(learner, name, metadata={"features": features})
        snapshots.append(time.perf_counter() - t)
        registry.promote(name, v.version)
        t = time.perf_counter()
        assert await engine.reload(name)
        reloads.append(time.perf_counter() - t)
        assert engine.served(name).version == v.version
    return snapshots, reloads


def http_run(args: argparse.Namespace, workdir: Path, bootstrap: str, redis_url: str, registry_dir: Path,
             model: str, customers: list[str]) -> dict[str, Any]:
    """Start a serving worker, send the open-loop load from another process, stop the worker."""
    port = free_port()
    ids_file = workdir / "ids.txt"
    ids_file.write_text("\n".join(customers))
    log = workdir / "server.log"
    argv = [sys.executable, "-m", "bench.serving_server", "--bootstrap", bootstrap, "--redis-url", redis_url,
            "--key-prefix", PREFIX, "--registry-dir", str(registry_dir), "--model", model,
            "--web-port", str(port), "--app-id", "bench-serving", "--datadir", str(workdir / "faust")]
    with log.open("wb") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                msg = f"the serving worker did not come up; see {log}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=1) as r:
                    if json.loads(r.read())["models"]:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        sender = subprocess.run(
            [sys.executable, "-m", "bench.serving_sender", "--url", f"http://127.0.0.1:{port}/predict/{model}",
             "--ids-file", str(ids_file), "--rate", str(args.http_rate),
             "--duration", str(args.http_seconds)],
            capture_output=True, timeout=args.http_seconds + 60, check=True,
        )
        result = dict(json.loads(sender.stdout))
        if set(result["status"]) - {"200"} or result["errors"]:
            result["server_log_tail"] = log.read_text(errors="replace")[-3000:]
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


async def run(args: argparse.Namespace, workdir: Path, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """Every measurement; returns the ``serving`` section."""
    client = redis.Redis.from_url(redis_url)
    store = FeatureStore(backend=RedisOnlineStore(
        client, key_prefix=PREFIX, async_factory=lambda: redis.asyncio.Redis.from_url(redis_url)))
    spec = PipelineSpec.from_yaml(resolve_spec_path("fraud_detection"))
    name, features = spec.name, list(spec.data.features)
    t = time.perf_counter()
    learner, customers, order_ids = load(store, client, spec, args.orders, args.customers)
    took = time.perf_counter() - t
    console.print(f"loaded {len(order_ids)} orders of {len(customers)} customers in {took:.1f}s")

    registry_dir = workdir / "registry"
    registry = Registry(registry_dir)
    v = registry.register(learner, name, version=spec.version, metadata={"features": features})
    registry.promote(name, v.version)
    engine = ServingEngine(store, redis_client=client, key_prefix=PREFIX,
                           registry=RegistryReader(registry_dir))
    await engine.reload(name)

    out: dict[str, Any] = {"customers": len(customers), "orders": len(order_ids), "features": len(features)}
    out.update(latency_ms(measure_lookups(engine, name, order_ids, args.lookups), prefix="lookup_"))
    for c in (1, 16, 64):
        await measure_predicts(engine, name, customers, c, 0.3)  # warm-up
        hits0, misses0 = engine.cache.hits, engine.cache.misses
        lat, mean_batch = await measure_predicts(engine, name, customers, c, args.predict_seconds)
        summary = latency_ms(lat)
        out[f"predict_p50_ms_c{c}"] = summary["p50_ms"]
        out[f"predict_p99_ms_c{c}"] = summary["p99_ms"]
        out[f"predict_per_s_c{c}"] = round(len(lat) / args.predict_seconds, 1)
        out[f"predict_mean_batch_c{c}"] = round(mean_batch, 2)
        looked = (engine.cache.hits - hits0) + (engine.cache.misses - misses0)
        out[f"predict_cache_hit_share_c{c}"] = round((engine.cache.hits - hits0) / max(1, looked), 4)
    snapshots, reloads = await measure_reloads(engine, registry, learner, name, features, args.reloads)
    out["snapshot_ms"] = round(statistics.median(snapshots) * 1000, 3)
    out["reload_ms"] = round(statistics.median(reloads) * 1000, 3)
    out["model_bytes"] = registry.show(name, "production").size
    await engine.close()
    client.close()

    if args.http_seconds > 0:
        http = http_run(args, workdir, bootstrap, redis_url, registry_dir, name, customers)
        rate = int(args.http_rate)
        out[f"http_predict_p50_ms_{rate}rps"] = http["p50_ms"]
        out[f"http_predict_p99_ms_{rate}rps"] = http["p99_ms"]
        out["http"] = http
    return out


def report(section: dict[str, Any]) -> None:
    """Print the figures beside their targets."""
    table = Table(title="serving (bench.serving)")
    table.add_column("measure")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("target p99", justify="right")
    table.add_column("note")
    lookup_p50, lookup_p99 = section["lookup_p50_ms"], section["lookup_p99_ms"]
    table.add_row("score lookup (Redis GET)", f"{lookup_p50:.3f}", f"{lookup_p99:.3f}", "<= 0.5",
                  "met" if lookup_p99 <= 0.5 else "missed")
    for c in (1, 16, 64):
        p99 = section[f"predict_p99_ms_c{c}"]
        target = "<= 5" if c == 64 else ""
        note = f"{section[f'predict_per_s_c{c}']:.0f}/s, batch {section[f'predict_mean_batch_c{c}']}"
        if c == 64:
            note += ", met" if p99 <= 5 else ", missed"
        table.add_row(f"predict, {c} callers", f"{section[f'predict_p50_ms_c{c}']:.3f}", f"{p99:.3f}",
                      target, note)
    http = section.get("http")
    if http:
        p99 = http["p99_ms"]
        note = (f"{http['offered_rps']}/s offered, {http['completed_rps']}/s answered, "
                f"status {http['status']}, errors {http['errors'] or 0}, sender late p99 "
                f"{http['send_lag_p99_ms']:.1f} ms, sender CPU {http['sender_cpu_share']:.0%}")
        note += ", met" if p99 <= 10 else ", missed"
        table.add_row(f"HTTP predict, {http['rate']:.0f} req/s open loop", f"{http['p50_ms']:.3f}",
                      f"{p99:.3f}", "<= 10", note)
    table.add_row("snapshot (registry register)", f"{section['snapshot_ms']:.2f}", "", "",
                  f"median, {section['model_bytes']} bytes")
    table.add_row("reload (promote -> served)", f"{section['reload_ms']:.2f}", "", "", "median")
    console.print(table)
    console.print(f"machine: {section['machine']['cores']} cores, Python {section['machine']['python']}, "
                  f"load average (1 min) before/after: {section['load_avg_1m']}")


def main(argv: list[str] | None = None) -> int:
    """Run the serving benchmark and write its section of bench/results.json."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--orders", type=int, default=20_000)
    p.add_argument("--lookups", type=int, default=20_000)
    p.add_argument("--predict-seconds", type=float, default=3.0)
    p.add_argument("--reloads", type=int, default=5)
    p.add_argument("--http-rate", type=float, default=500.0)
    p.add_argument("--http-seconds", type=float, default=10.0, help="0 skips the HTTP measurement")
    args = p.parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hanzo-bench-serving-") as tmp:
        workdir = Path(tmp)
        redis_proc = broker = None
        try:
            redis_port, kafka_port = free_port(), free_port()
            redis_proc = start_redis(redis_port, workdir / "redis")
            broker = start_broker(kafka_port, workdir / "tansu.log")
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            section = asyncio.run(run(args, workdir, f"127.0.0.1:{kafka_port}", redis_url))
        finally:
            for proc in (broker, redis_proc):
                if proc is not None:
                    stop_process(proc.pid, binary_of(proc))
    section["machine"] = machine()
    # shared machines are noisy: say how busy this one was
    section["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    section["seconds"] = round(time.perf_counter() - started, 1)
    write_section("serving", section)
    report(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
