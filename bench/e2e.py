"""End-to-end throughput of one worker beside its ceilings, measured in the same run.

* ``orders_per_s``: orders through the whole worker (features, score, Redis writes, learning on the labels
  that flow beside them), timed from the first event processed to the last order processed, so the consumer
  group join is not counted;
* ``faust_noop_events_per_s``: a Faust agent that does nothing, on the same topic;
* ``aiokafka_raw_msgs_per_s``: a raw aiokafka ``getmany`` consumer on the same topic;
* ``ratio_vs_faust_noop``: ``orders_per_s / faust_noop_events_per_s``;
* ``rss_mb_start`` / ``rss_mb_end``: the worker's resident memory after start and at the end.

Run alone: ``.venv/bin/python -m bench.e2e [--orders N]``; it updates only the ``e2e`` section of
``bench/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from bench.results import machine, write_section
from streams.demo import scrape
from streams.embedded import binary_of, free_port, start_broker, start_redis, stop_process
from streams.schemas import Label, Order, to_json
from streams.simulation import Simulator, SimulatorConfig
from streams.topics import ensure_topics

console = Console()


async def _produce(bootstrap: str, events: list, topics: dict[str, str]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=262144)
    await p.start()
    try:
        futures = []
        for e in events:
            if isinstance(e, Order):
                topic, key = topics["orders"], e.customer_id
            elif isinstance(e, Label):
                topic, key = topics["labels"], e.subject_id
            else:
                topic, key = topics["events"], e.customer_id
            futures.append(await p.send(topic, to_json(e), key=key.encode()))
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await p.stop()


async def _raw_drain(bootstrap: str, topic: str, n: int) -> float:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await c.start()
    try:
        got, first = 0, time.perf_counter()
        while got < n:
            batch = await c.getmany(timeout_ms=1000, max_records=10_000)
            got += sum(len(v) for v in batch.values())
        return n / (time.perf_counter() - first)
    finally:
        await c.stop()


def _faust_noop(bootstrap: str, topic: str, n: int, workdir: Path) -> float:
    out = workdir / "noop.json"
    env = {
        **os.environ,
        "BENCH_BOOTSTRAP": bootstrap,
        "BENCH_TOPIC": topic,
        "BENCH_N": str(n),
        "BENCH_OUT": str(out),
        "BENCH_WEB_PORT": str(free_port()),
    }
    with (workdir / "noop.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_noop"],
            env=env,
            stdout=log,  # noqa: S603
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        if not out.exists():
            raise RuntimeError(f"the no-op Faust agent did not finish; see {workdir / 'noop.log'}")
        d = json.loads(out.read_text())
        return d["events"] / d["seconds"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker_throughput(
    bootstrap: str, redis_url: str, topics: dict[str, str], n_orders: int, workdir: Path
) -> dict[str, float]:
    metrics_port = free_port()
    env = {
        **os.environ,
        "HANZO_KAFKA_BOOTSTRAP": bootstrap,
        "HANZO_REDIS_URL": redis_url,
        "HANZO_TOPIC_ORDERS": topics["orders"],
        "HANZO_TOPIC_EVENTS": topics["events"],
        "HANZO_TOPIC_LABELS": topics["labels"],
        "HANZO_REGISTRY_DIR": str(workdir / "registry"),
        "HANZO_STATE_DIR": str(workdir),
        "HANZO_WEB_PORT": str(free_port()),
        "HANZO_METRICS_PORT": str(metrics_port),
        "HANZO_LOG_LEVEL": "WARNING",
    }
    with (workdir / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,  # noqa: S603
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    orders_key = f"hanzo_events_processed_total{{topic={topics['orders']}}}"
    try:
        first = rss_start = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {workdir / 'worker.log'}")
            try:
                m = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            except OSError:
                time.sleep(0.2)
                continue
            done = m.get(orders_key, 0.0)
            if done > 0 and not first:
                first = time.perf_counter()
                rss_start = _rss_mb(proc.pid)
            if done >= n_orders:
                seconds = time.perf_counter() - first
                return {
                    "orders_per_s": n_orders / seconds,
                    "rss_mb_start": rss_start,
                    "rss_mb_end": _rss_mb(proc.pid),
                    "labels_learned": m.get("hanzo_labels_learned_total", 0.0),
                }
            time.sleep(0.05)
        raise RuntimeError("the worker did not finish in time")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(n_orders: int) -> dict[str, object]:
    """Measure everything; returns the ``e2e`` section."""
    with tempfile.TemporaryDirectory(prefix="hanzo-bench-") as tmp:
        workdir = Path(tmp)
        broker = start_broker(free_port(), workdir / "tansu.log")
        redis_proc = start_redis(free_port(), workdir / "redis")
        bootstrap = f"127.0.0.1:{_port_of(broker)}"
        redis_url = f"redis://127.0.0.1:{_port_of(redis_proc)}/0"
        try:
            topics = {"orders": "orders", "events": "events", "labels": "labels"}
            asyncio.run(
                ensure_topics(bootstrap, {t: 4 for t in (*topics.values(), "scores", "dead-letters")})
            )
            sim = Simulator(
                SimulatorConfig(
                    seed=1, orders=n_orders, customers=5000, orders_per_day=2000, browse_events_per_order=0.0
                )
            )
            events = list(sim.events())
            console.print(f"producing {len(events):,} events ({n_orders:,} orders) ...")
            asyncio.run(_produce(bootstrap, events, topics))
            raw = asyncio.run(_raw_drain(bootstrap, topics["orders"], n_orders))
            noop = _faust_noop(bootstrap, topics["orders"], n_orders, workdir)
            ours = _worker_throughput(bootstrap, redis_url, topics, n_orders, workdir)
        finally:
            for proc in (broker, redis_proc):
                stop_process(proc.pid, binary_of(proc))
    return {
        "orders": n_orders,
        "orders_per_s": round(ours["orders_per_s"], 1),
        "faust_noop_events_per_s": round(noop, 1),
        "aiokafka_raw_msgs_per_s": round(raw, 1),
        "ratio_vs_faust_noop": round(ours["orders_per_s"] / noop, 3),
        "ratio_vs_aiokafka_raw": round(ours["orders_per_s"] / raw, 4),
        "rss_mb_start": round(ours["rss_mb_start"], 1),
        "rss_mb_end": round(ours["rss_mb_end"], 1),
        "labels_learned": ours["labels_learned"],
        "machine": machine(),
    }


def _port_of(proc: subprocess.Popen[bytes]) -> int:
    args = [str(a) for a in proc.args]  # type: ignore[union-attr]
    for i, a in enumerate(args):
        if a == "--port":
            return int(args[i + 1])
        if a.startswith("--listener-url"):
            return int(args[i + 1].rsplit(":", 1)[1])
    raise ValueError(f"no port in {args}")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="bench.e2e")
    parser.add_argument("--orders", type=int, default=int(os.environ.get("HANZO_BENCH_ORDERS", "20000")))
    args = parser.parse_args(argv)
    section = run(args.orders)
    write_section("e2e", section)
    t = Table(title="e2e: one worker vs its ceilings (same run)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k in (
        "orders_per_s",
        "faust_noop_events_per_s",
        "aiokafka_raw_msgs_per_s",
        "ratio_vs_faust_noop",
        "rss_mb_start",
        "rss_mb_end",
    ):
        t.add_row(k, f"{section[k]:,}")
    console.print(t)
    return section


if __name__ == "__main__":
    main()
