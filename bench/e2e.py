"""End-to-end figures of the real worker beside its ceilings, measured in the same run.

On one embedded Tansu broker and one redis-server, with a prefilled stream (simulated orders, their labels):

* ``orders_per_s``: orders through one worker (features, score, Redis writes, learning on the labels that
  flow beside them), timed from the first order processed to the last, so the group join is not counted;
* ``faust_noop_events_per_s``: a Faust agent that does nothing, on the same topic (``bench.faust_noop``);
* ``aiokafka_raw_msgs_per_s``: a raw aiokafka ``getmany`` consumer on the same topic;
* ``freshness_p50_ms`` / ``freshness_p99_ms`` at ``freshness_rate_orders_per_s``: the same worker, caught up,
  then fed by a producer process sending new orders (and their labels) at that fixed rate; the producer
  notes each order's send time (wall clock) and a reader here polls Redis for the order's score key every
  few ms: freshness is "readable" minus "sent" on this machine's clock, so it counts the producer's linger,
  the broker, the consumer's batching, the processing and the Redis write, plus up to one poll interval.
  ``freshness_scored_at_p99_ms`` is the same from the score record's ``scored_at_ms`` (a lower bound). When
  the worker does not keep the rate (its backlog grows), the rate it keeps is reported and freshness is
  measured again at a rate it does keep (``freshness_kept_*``);
* ``score_worker_freshness_p50_ms`` / ``_p99_ms``: the same measurement at the same rate against one
  ``role: score`` worker while a ``role: learn`` worker learns beside it (each in a fresh group, after the
  scorer caught up with the topics and the learner with the labels there): the freshness of the
  deployment that keeps learning off the scorer;
* ``rss_mb_start`` / ``rss_mb_end``: the worker's resident memory at its first order and at the end, over
  ``orders`` (the prefill plus the freshness orders). ``--memory-orders N`` also streams N orders through a
  fresh worker on a fresh broker and samples its memory (``memory_run``: start, after warm-up, end, max and
  a downsampled curve; ``rss_mb_start`` / ``rss_mb_end`` then come from it);
* ``score_worker_orders_per_s``: one ``role: score`` worker on the same prefilled topics while a
  ``role: learn`` worker learns the labels beside it (``bench.scaleout.roles_run``): scoring with
  learning in another process, to compare with ``orders_per_s`` (the same worker scoring and learning);
  ``learner_labels_learned`` and ``learner_done_s`` say whether the learner kept up;
* ``two_workers_speedup``: two workers in one consumer group against one worker, each group on its own
  topics, joined before the same events are produced (``bench.scaleout.joined_group_run``): on a
  prefilled topic the first worker up takes a head start on every partition and the run ends with one
  worker draining an uneven rest alone.

Run alone: ``.venv/bin/python -m bench.e2e [--orders N] [--memory-orders N] [--only memory]``; it updates
only the ``e2e`` section of ``bench/results.json`` (a run without ``--memory-orders`` keeps the last
``memory_run``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from bench.common import latency_ms
from bench.results import RESULTS, machine, write_section
from bench.scaleout import (
    BenchWorker,
    measure_group,
    roles_run,
    start_group,
    stop_group,
    two_workers_speedup,
    worker_env,
)
from hanzo.ml.learners.keys import score_key
from hanzo.ml.schemas.events import Label, Order, to_json
from hanzo.ml.streams.embedded import binary_of, free_port, start_broker, start_redis, stop_process
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from hanzo.ml.streams.topics import ensure_topics

console = Console()
MODEL = "fraud_detection"
TOPICS = {r: r for r in ("orders", "events", "labels", "scores", "dead-letters")}
KINDS = {"order": "orders", "customer_event": "events", "label": "labels"}
ROOT = Path(__file__).resolve().parents[1]


def _sim_config(orders: int, seed: int = 1, start_time_ms: int | None = None) -> SimulatorConfig:
    extra: dict[str, Any] = {} if start_time_ms is None else {"start_time_ms": start_time_ms}
    return SimulatorConfig(
        seed=seed, orders=orders, customers=5000, orders_per_day=2000, browse_events_per_order=0.0, **extra
    )


# -- ceilings --------------------------------------------------------------------------------------------


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
        # the no-op app runs in the work folder (Faust writes its data folder there): find `bench` from it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with (workdir / "noop.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.faust_noop"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        if not out.exists():
            msg = f"the no-op Faust agent did not finish; see {workdir / 'noop.log'}"
            raise RuntimeError(msg)
        d = json.loads(out.read_text())
        return float(d["events"] / d["seconds"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- freshness --------------------------------------------------------------------------------------------


def _paced_producer(
    bootstrap: str, rate: float, orders: int, start_time_ms: int, seed: int, out: Any
) -> None:
    """Child process: send ``orders`` new orders (and their labels) at ``rate`` orders/s.

    Puts lists of ``(order_id, sent wall-clock ms)`` on ``out`` every few ms, then ``None``.
    """
    asyncio.run(_paced(bootstrap, rate, orders, start_time_ms, seed, out))


async def _paced(bootstrap: str, rate: float, orders: int, start_time_ms: int, seed: int, out: Any) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await p.start()
    try:
        sent: list[tuple[str, float]] = []
        futures: list[Any] = []
        i, t0 = 0, time.monotonic()
        flushed = t0
        for e in Simulator(_sim_config(orders, seed=seed, start_time_ms=start_time_ms)).events():
            if isinstance(e, Order):
                now = time.monotonic()
                wait = t0 + i / rate - now
                if wait > 0.002 or now - flushed > 0.005:
                    # the reader learns of every order within a few ms, even when sending falls behind
                    out.put(sent)
                    sent, flushed = [], now
                if wait > 0.002:
                    await asyncio.sleep(wait)
                i += 1
                sent.append((e.order_id, time.time() * 1000))
                futures.append(await p.send(KINDS["order"], to_json(e), key=e.customer_id.encode()))
            elif isinstance(e, Label):
                futures.append(await p.send(KINDS["label"], to_json(e), key=e.subject_id.encode()))
            else:
                futures.append(await p.send(KINDS["customer_event"], to_json(e), key=e.customer_id.encode()))
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                futures.clear()
        out.put(sent)
        await asyncio.gather(*futures)
    finally:
        await p.stop()
        out.put(None)


def freshness(
    bootstrap: str,
    client: redis.Redis,
    key_prefix: str,
    rate: float,
    seconds: float,
    start_time_ms: int,
    seed: int,
    poll_s: float = 0.005,
) -> dict[str, Any]:
    """Send ``rate`` orders/s for ``seconds`` from a child process; poll Redis until each score is there."""
    n = int(rate * seconds)
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    proc = ctx.Process(target=_paced_producer, args=(bootstrap, rate, n, start_time_ms, seed, q), daemon=True)
    proc.start()
    pending: dict[str, float] = {}
    readable: list[float] = []
    scored_at: list[float] = []
    first_sent = last_sent = 0.0
    producer_done_at: float | None = None
    backlog_at_end = 0
    deadline = time.monotonic() + seconds * 3 + 120
    try:
        while time.monotonic() < deadline:
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    producer_done_at = time.monotonic()
                    backlog_at_end = len(pending)
                    continue
                for oid, t in item:
                    pending[oid] = t
                    first_sent = first_sent or t
                    last_sent = t
            if pending:
                ids = list(pending)[:5000]
                raws = client.mget([score_key(MODEL, oid, key_prefix) for oid in ids])
                now_ms = time.time() * 1000
                for oid, raw in zip(ids, raws, strict=True):
                    if raw is not None:
                        sent = pending.pop(oid)
                        readable.append((now_ms - sent) / 1000)
                        scored_at.append((json.loads(raw)["scored_at_ms"] - sent) / 1000)
            elif producer_done_at is not None:
                break
            time.sleep(poll_s)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    sent_rate = (n - 1) / ((last_sent - first_sent) / 1000) if last_sent > first_sent else float("nan")
    # kept: the backlog when the producer finished is under a second of orders and nothing was left unscored
    kept = not pending and backlog_at_end < rate and sent_rate >= 0.95 * rate
    half = len(readable) // 2
    return {
        "rate_orders_per_s": rate,
        "orders": n,
        "sent_orders_per_s": round(sent_rate, 1),
        "kept": kept,
        "backlog_when_producer_done": backlog_at_end,
        "unscored": len(pending),
        **latency_ms(readable),
        **latency_ms(scored_at, prefix="scored_at_"),
        "second_half_p99_ms": latency_ms(readable[half:])["p99_ms"],
        "poll_interval_ms": poll_s * 1000,
    }


def score_worker_freshness(
    stack: Prefilled, orders_in_topic: int, rate: float, seconds: float, start_time_ms: int, workdir: Path
) -> dict[str, Any]:
    """Freshness of a ``role: score`` worker while a ``role: learn`` worker learns beside it.

    Both join fresh groups on the same topics; once the scorer has caught up with the ``orders_in_topic``
    orders already there, :func:`freshness` runs at ``rate`` against the scorer's score keys.
    """
    env = worker_env(stack.bootstrap, stack.redis_url, TOPICS, "rf:", workdir / "registry", workdir / "state")
    scorer = BenchWorker({**env, "HANZO_ROLE": "score"}, workdir, name="fresh-scorer")
    learner = BenchWorker({**env, "HANZO_ROLE": "learn"}, workdir, name="fresh-learner")
    try:
        learner.start()
        scorer.start()
        measure_group([scorer], TOPICS["orders"], orders_in_topic)
        settled = _learner_settled(learner)
        return {
            **freshness(stack.bootstrap, stack.client, "rf:", rate, seconds, start_time_ms, seed=4),
            "learner_labels_learned_before": settled,
        }
    finally:
        stop_group([scorer, learner])


def _learner_settled(learner: BenchWorker, quiet_s: float = 2.0, timeout_s: float = 180.0) -> float:
    """Wait until ``learner`` has caught up with the labels already in the topic: its learned count has not
    moved for ``quiet_s`` (the rest wait for orders not produced yet). Returns that count.

    Otherwise the learner's catch-up on every earlier label would run on the same two cores during the
    freshness window, which measures the scorer in a steady state, not a replay.
    """
    deadline = time.monotonic() + timeout_s
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline and learner.alive:
        now = learner.metrics().get("hanzo_labels_learned_total", 0.0)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.2)
    return last


# -- memory over a long stream ---------------------------------------------------------------------------


def _flow_producer(bootstrap: str, orders: int, seed: int, allowed: Any) -> None:
    """Child process: send the simulated stream, never more than ``allowed.value`` orders.

    The parent raises ``allowed`` as the worker progresses, so the stream stays a few seconds ahead of the
    worker (a steady state, as in production) instead of piling up in the broker: a backlog would make the
    labels run ahead of their orders and wait in the learner, which is not what this run measures.
    """
    asyncio.run(_flow(bootstrap, orders, seed, allowed))


async def _flow(bootstrap: str, orders: int, seed: int, allowed: Any) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        futures: list[Any] = []
        i = 0
        for e in Simulator(_sim_config(orders, seed=seed)).events():
            if isinstance(e, Order):
                while i >= allowed.value:
                    await asyncio.gather(*futures)
                    futures.clear()
                    await asyncio.sleep(0.05)
                i += 1
            topic = KINDS[e.kind]
            key = e.subject_id if isinstance(e, Label) else e.customer_id
            futures.append(await p.send(topic, to_json(e), key=key.encode()))
            if len(futures) >= 2000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await p.stop()


def memory_run(
    n_orders: int,
    workdir: Path,
    warmup_orders: int | None = None,
    lead_orders: int = 6000,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Stream ``n_orders`` orders (and labels) through one fresh worker on a fresh stack; sample its RSS.

    The producer stays at most ``lead_orders`` orders ahead of the worker. With ``max_seconds`` the run
    ends after that long and reports the orders it reached (``complete: false``).
    """
    warmup = warmup_orders if warmup_orders is not None else min(100_000, n_orders // 10)
    broker = start_broker(free_port(), workdir / "tansu-memory.log")
    redis_proc = start_redis(free_port(), workdir / "redis-memory")
    bootstrap, redis_url = f"127.0.0.1:{_port_of(broker)}", f"redis://127.0.0.1:{_port_of(redis_proc)}/0"
    ctx = mp.get_context("spawn")
    allowed: Any = ctx.Value("q", lead_orders)
    producer = ctx.Process(target=_flow_producer, args=(bootstrap, n_orders, 11, allowed), daemon=True)
    group: list[BenchWorker] = []
    try:
        asyncio.run(ensure_topics(bootstrap, {t: 4 for t in TOPICS.values()}))
        producer.start()
        group = start_group(1, bootstrap, redis_url, TOPICS, "mem:", workdir / "memory")
        started = time.monotonic()

        shown = [0.0]

        def progress(seconds: float, done: float) -> None:
            allowed.value = int(done) + lead_orders
            if seconds - shown[0] >= 30:
                shown[0] = seconds
                console.print(f"  memory run: {done:,.0f} orders, RSS {group[0].rss_mb():.0f} MB")

        run = measure_group(
            group,
            TOPICS["orders"],
            n_orders,
            timeout_s=6 * 3600,
            poll_s=0.5,
            on_sample=progress,
            stop_after_s=max_seconds,
        )
        labels = group[0].metrics().get("hanzo_labels_learned_total", 0.0)
    finally:
        stop_group(group)
        if producer.is_alive():
            producer.terminate()
        producer.join(10)
        for proc in (broker, redis_proc):
            stop_process(proc.pid, binary_of(proc))
    samples = run.rss_samples
    rss = np.array([s[2] for s in samples])
    done = np.array([s[1] for s in samples])
    after = [s for s in samples if s[1] >= warmup] or samples[-1:]
    tail = done >= max(warmup, run.orders / 2)
    slope = float(np.polyfit(done[tail], rss[tail], 1)[0]) * 100_000 if tail.sum() >= 3 else float("nan")
    step = max(1, len(samples) // 60)
    return {
        "orders": run.orders,
        "orders_asked": n_orders,
        "complete": run.complete,
        "labels_learned": labels,
        "rss_mb_start": samples[0][2],
        "rss_mb_after_warmup": after[0][2],
        "warmup_orders": warmup,
        "rss_mb_end": samples[-1][2],
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_mb_per_100k_orders_second_half": round(slope, 2),
        "orders_per_s": round(run.orders_per_s, 1),
        "producer_lead_orders": lead_orders,
        "seconds": round(time.monotonic() - started, 1),
        "curve_seconds_orders_rss_mb": [list(s) for s in samples[::step]] + [list(samples[-1])],
    }


# -- the main run ------------------------------------------------------------------------------------------


def _last_memory_run() -> dict[str, Any] | None:
    try:
        previous = json.loads(RESULTS.read_text()).get("e2e", {})
    except (OSError, ValueError):
        return None
    found = previous.get("memory_run")
    return found if isinstance(found, dict) else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; returns the ``e2e`` section."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hanzo-bench-") as tmp:
        workdir = Path(tmp)
        section: dict[str, Any] = {}
        if args.only != "memory":
            section = _main_run(args, workdir)
        memory = (
            memory_run(args.memory_orders, workdir, max_seconds=args.memory_max_seconds)
            if args.memory_orders
            else _last_memory_run()
        )
    if memory is not None:
        section["memory_run"] = memory
        section["rss_mb_start"], section["rss_mb_end"] = memory["rss_mb_start"], memory["rss_mb_end"]
        section["rss_orders"] = memory["orders"]
    section["machine"] = machine()
    section["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return section


@dataclass
class Prefilled:
    """A broker and a redis-server of our own, with the topics made and the simulated events produced."""

    bootstrap: str
    redis_url: str
    client: redis.Redis
    events: list[Any]
    broker_pid: int = 0
    """The Tansu process (for its CPU time)."""


@contextmanager
def prefilled(n_orders: int, workdir: Path) -> Iterator[Prefilled]:
    """Start Tansu and redis-server on free ports and produce ``n_orders`` simulated orders (with their
    labels) to 4 partitions a topic; both are stopped by pid on exit."""
    broker = start_broker(free_port(), workdir / "tansu.log")
    redis_proc = start_redis(free_port(), workdir / "redis")
    bootstrap = f"127.0.0.1:{_port_of(broker)}"
    redis_url = f"redis://127.0.0.1:{_port_of(redis_proc)}/0"
    client = redis.Redis.from_url(redis_url)
    try:
        asyncio.run(ensure_topics(bootstrap, {t: 4 for t in TOPICS.values()}))
        events = list(Simulator(_sim_config(n_orders)).events())
        console.print(f"producing {len(events):,} events ({n_orders:,} orders) ...")
        asyncio.run(produce(events, bootstrap, KINDS, partitions=4))
        yield Prefilled(bootstrap, redis_url, client, events, broker_pid=broker.pid)
    finally:
        client.close()
        for proc in (broker, redis_proc):
            stop_process(proc.pid, binary_of(proc))


def _main_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n_orders = args.orders
    group: list[BenchWorker] = []
    with prefilled(n_orders, workdir) as stack:
        bootstrap, redis_url, client, events = stack.bootstrap, stack.redis_url, stack.client, stack.events
        last_time = max(e.event_time for e in events)
        try:
            raw = asyncio.run(_raw_drain(bootstrap, TOPICS["orders"], n_orders))
            noop = _faust_noop(bootstrap, TOPICS["orders"], n_orders, workdir)
            console.print("one worker on the prefilled topics ...")
            group = start_group(1, bootstrap, redis_url, TOPICS, "w1:", workdir / "w1")
            one = measure_group(group, TOPICS["orders"], n_orders)
            rss_start = one.rss_samples[0][2] if one.rss_samples else group[0].rss_mb()
            labels = group[0].metrics().get("hanzo_labels_learned_total", 0.0)
            fresh: list[dict[str, Any]] = []
            rate, start_ms = float(args.freshness_rate), last_time + 86_400_000
            console.print(f"freshness at {rate:,.0f} orders/s for {args.freshness_seconds:.0f} s ...")
            fresh.append(freshness(bootstrap, client, "w1:", rate, args.freshness_seconds, start_ms, seed=2))
            if not fresh[0]["kept"]:
                kept_rate = float(max(100, int(0.5 * one.orders_per_s / 100) * 100))
                console.print(f"not kept; freshness again at {kept_rate:,.0f} orders/s ...")
                start_ms += 30 * 86_400_000
                fresh.append(
                    freshness(bootstrap, client, "w1:", kept_rate, args.freshness_seconds, start_ms, 3)
                )
            rss_end = group[0].rss_mb()
            stop_group(group)
            group = []
            console.print("one scoring worker and one learner process (roles score and learn) ...")
            n_labels = sum(1 for e in events if isinstance(e, Label))
            try:
                roles: dict[str, Any] = roles_run(
                    bootstrap, redis_url, TOPICS, n_orders, n_labels, workdir / "roles"
                )
            except RuntimeError as exc:
                roles = {"score_worker_orders_per_s": None, "roles_error": str(exc)[:2000]}
            rate = float(args.freshness_rate)
            console.print(f"freshness of a scoring worker (learner apart) at {rate:,.0f} orders/s ...")
            in_topic = n_orders + sum(f["orders"] for f in fresh)
            start_ms += 30 * 86_400_000
            score_fresh = score_worker_freshness(
                stack, in_topic, rate, args.freshness_seconds, start_ms, workdir / "roles-fresh"
            )
            console.print("one worker, then two in one group, each joined before its orders are produced ...")
            try:
                scale = two_workers_speedup(
                    bootstrap, redis_url, events, n_orders, workdir, repeats=args.scaleout_repeats
                )
            except RuntimeError as exc:  # a group that never finishes must not lose the other figures
                scale = {"two_workers_speedup": None, "two_workers_error": str(exc)[:2000]}
        finally:
            stop_group(group)
    first = fresh[0]
    section: dict[str, Any] = {
        "orders": n_orders,
        "orders_per_s": round(one.orders_per_s, 1),
        "faust_noop_events_per_s": round(noop, 1),
        "aiokafka_raw_msgs_per_s": round(raw, 1),
        "ratio_vs_faust_noop": round(one.orders_per_s / noop, 3),
        "ratio_vs_aiokafka_raw": round(one.orders_per_s / raw, 4),
        "labels_learned": labels,
        "freshness_rate_orders_per_s": first["rate_orders_per_s"],
        "freshness_p50_ms": first["p50_ms"],
        "freshness_p99_ms": first["p99_ms"],
        "freshness_scored_at_p99_ms": first["scored_at_p99_ms"],
        "freshness_rate_kept": first["kept"],
        "freshness_runs": fresh,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "rss_orders": n_orders + sum(f["orders"] for f in fresh),
        **scale,
        **roles,
        "score_worker_freshness_rate_orders_per_s": score_fresh["rate_orders_per_s"],
        "score_worker_freshness_p50_ms": score_fresh["p50_ms"],
        "score_worker_freshness_p99_ms": score_fresh["p99_ms"],
        "score_worker_freshness_kept": score_fresh["kept"],
        "score_worker_freshness_run": score_fresh,
    }
    if len(fresh) > 1:
        section["freshness_kept_rate_orders_per_s"] = fresh[1]["rate_orders_per_s"]
        section["freshness_kept_p50_ms"] = fresh[1]["p50_ms"]
        section["freshness_kept_p99_ms"] = fresh[1]["p99_ms"]
        section["freshness_kept"] = fresh[1]["kept"]
    return section


def _port_of(proc: subprocess.Popen[bytes]) -> int:
    args = [str(a) for a in proc.args]  # type: ignore[union-attr]
    for i, a in enumerate(args):
        if a == "--port":
            return int(args[i + 1])
        if a.startswith("--listener-url"):
            return int(args[i + 1].rsplit(":", 1)[1])
    msg = f"no port in {args}"
    raise ValueError(msg)


SHOWN = (
    "orders_per_s",
    "score_worker_orders_per_s",
    "learner_labels_learned",
    "faust_noop_events_per_s",
    "aiokafka_raw_msgs_per_s",
    "ratio_vs_faust_noop",
    "freshness_rate_orders_per_s",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "freshness_kept_rate_orders_per_s",
    "freshness_kept_p99_ms",
    "score_worker_freshness_p50_ms",
    "score_worker_freshness_p99_ms",
    "rss_orders",
    "rss_mb_start",
    "rss_mb_end",
    "two_workers_speedup",
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write section ``e2e`` of bench/results.json, print a table."""
    p = argparse.ArgumentParser(prog="bench.e2e", description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=int(os.environ.get("HANZO_BENCH_ORDERS", "20000")))
    p.add_argument("--freshness-rate", type=float, default=1000.0, help="orders/s of the freshness runs")
    p.add_argument("--freshness-seconds", type=float, default=20.0)
    p.add_argument("--memory-orders", type=int, default=0, help="stream N orders through a fresh worker")
    p.add_argument(
        "--memory-max-seconds", type=float, default=None, help="end the memory run after this long"
    )
    p.add_argument(
        "--scaleout-repeats", type=int, default=3, help="one-then-two-worker pairs (median ratio reported)"
    )
    p.add_argument("--only", choices=("memory",), default=None, help="only the memory run")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on the way out
    if args.only == "memory" and not args.memory_orders:
        p.error("--only memory needs --memory-orders N")
    section = run(args)
    if args.only == "memory":
        previous = json.loads(RESULTS.read_text()).get("e2e", {}) if RESULTS.exists() else {}
        previous.pop("when", None)
        section = {**previous, **section}
    write_section("e2e", section)
    t = Table(title="e2e: one worker vs its ceilings (same run)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k in SHOWN:
        if k in section:
            t.add_row(k, f"{section[k]:,}" if isinstance(section[k], int | float) else str(section[k]))
    console.print(t)
    return section


if __name__ == "__main__":
    main()
