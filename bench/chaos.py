"""Chaos: the real worker killed with SIGKILL at random points while a stream flows in; nothing may be lost.

Run alone with ``.venv/bin/python -m bench.chaos [--orders N --kills K]`` (also ``make chaos``); it updates
section ``chaos`` of ``bench/results.json`` and exits non-zero when anything was lost or counted twice.

It starts its own Tansu broker and redis-server, then a worker (``python -m streams.cli worker``). A
background producer sends a simulated shop (orders, customer events and their delayed labels) at a steady
rate, with malformed messages of every kind mixed in (bad JSON, non-UTF-8, wrong types, missing fields,
NaN, negative quantity, a timestamp in seconds, oversized, an unknown schema_version; on the orders, events
and labels topics). A supervisor kills the worker with SIGKILL at random points, ``--kills`` times, and
restarts it at once with the same consumer group and registry folder (a share of the kills lands during
start-up). Once the stream is drained:

* ``lost``: orders missing from the customers' lifetime order counts, plus orders without a score key,
  plus labels not learned; ``double_counted``: orders counted more than once in the lifetime counts.
  Every customer, product and category aggregate (``get_features_batch`` on every one) is compared with an
  independent recomputation from the produced events (``feature_mismatches``; counts exactly, sums to
  float rounding);
* ``labels_learned_twice``: the running worker's ``/health`` ``models.fraud_detection.examples`` (the
  learner restored from the latest snapshot, plus what it learned since) minus the distinct labels;
* ``dead_letters_by_reason``: distinct dead letters (by origin topic/partition/offset) per reason, to
  compare with ``dead_letters_expected``; a batch re-delivered after a kill publishes its dead letters
  again (there are no Kafka transactions on Tansu), counted in ``dead_letter_copies``;
* ``recovery_p99_s``: from a restart (process spawn) to the first batch the new worker processed.

Each restart costs ~15-25 s here (interpreter and runtime start, Faust start-up, group join), so the
default (100,000 orders, 10 kills) takes 5-9 minutes on a shared two-core machine; ``--orders 20000
--kills 4`` takes about three. The broker keeps every message in memory (~1 KB each: ~250 MB for the
default stream).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
from rich.console import Console
from rich.table import Table

from bench.results import machine, write_section
from hanzo.ml.registry import Registry
from hanzo.ml.streams.embedded import binary_of, free_port, start_broker, start_redis, stop_process
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from tests.chaos_support import (
    MODEL,
    ROLES,
    BackgroundProducer,
    Supervisor,
    Worker,
    compare_features,
    count_scores,
    expected_reasons,
    labels_of,
    malformed_messages,
    missing_scores,
    read_dead_letters,
    wait_for,
    worker_env,
)

WORKDIR = Path(".hanzo") / "chaos"
console = Console()


def _simulate(orders: int, seed: int) -> list[Any]:
    config = SimulatorConfig(
        seed=seed,
        orders=orders,
        customers=max(200, orders // 20),
        orders_per_day=max(1000.0, orders / 5),
        browse_events_per_order=0.3,
        chargeback_delay_days=(0.2, 1.5),
        settle_delay_days=(0.2, 1.0),
        fraud_rate=0.04,
    )
    return list(Simulator(config).events())


def run(args: argparse.Namespace, workdir: Path, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """One chaos run against the given broker and Redis; returns the section."""
    t0 = time.monotonic()
    with console.status(f"simulating {args.orders:,} orders"):
        events = _simulate(args.orders, args.seed)
    order_ids = [e.order_id for e in events if e.kind == "order"]
    labels = labels_of(events)
    bad = malformed_messages(rounds=args.bad_rounds)
    topics = {r: f"chaos-{r}" for r in ROLES}
    prefix = "chaos:"
    env = worker_env(bootstrap, redis_url, topics, prefix, workdir / "registry", workdir / "state")
    worker = Worker(env, workdir / "logs")
    rate = len(events) / args.produce_seconds
    client = redis.Redis.from_url(redis_url)
    producer = BackgroundProducer(events, bootstrap, topics, rate=rate, bad=bad)
    n_orders = len(order_ids)
    supervisor = Supervisor(
        worker,
        kills=args.kills,
        uptime_s=(args.uptime_min, args.uptime_max),
        seed=args.seed,
        work_left=lambda: producer.is_alive() or count_scores(client, prefix) < n_orders,
    )
    console.print(
        f"{len(events):,} events ({len(order_ids):,} orders, {len(labels):,} labels) + {len(bad)} malformed "
        f"at {rate:,.0f} events/s; {args.kills} kills; worker logs in {workdir / 'logs'}"
    )
    try:
        producer.start()
        worker.start()
        supervisor.start()
        started = time.monotonic()
        with console.status("streaming and killing") as status:
            while supervisor.is_alive() and supervisor.done_kills < args.kills:
                status.update(f"streaming and killing: {supervisor.done_kills}/{args.kills} kills")
                time.sleep(1.0)
            if supervisor.error is not None:
                raise supervisor.error
            status.update("waiting for the producer")
            producer.join()
            if producer.error is not None:
                raise producer.error
            produced_at = time.monotonic()
            status.update("draining")
            wait_for("every order scored", lambda: count_scores(client, prefix) >= n_orders, 600, worker)
            _wait_learned(worker, len(labels))
            wanted = sum(expected_reasons(bad).values())
            dlq = topics["dead-letters"]
            wait_for(
                "every malformed message dead-lettered",
                lambda: sum(read_dead_letters(bootstrap, dlq).by_reason.values()) >= wanted,
                120,
                worker,
            )
            drained_at = time.monotonic()
            status.update("checking")
            supervisor.stop()
            supervisor.join(10)
            missing = missing_scores(client, prefix, order_ids)
            features = compare_features(client, prefix, events)
            examples = worker.examples() or 0
            health = worker.health()[0]
            letters = read_dead_letters(bootstrap, topics["dead-letters"])
            snapshots = len(Registry(workdir / "registry").list_versions(MODEL))
    finally:
        supervisor.stop()
        worker.stop()
        client.close()
    recoveries = supervisor.recoveries
    labels_lost = max(0, len(labels) - examples)
    section: dict[str, Any] = {
        "orders": len(order_ids),
        "kills": supervisor.done_kills,
        "lost": features.lost_orders + len(missing) + labels_lost,
        "double_counted": features.double_counted_orders,
        "labels_learned_twice": max(0, examples - len(labels)),
        "dead_letters_by_reason": letters.by_reason,
        "recovery_p99_s": _pct(recoveries, 99),
        "recovery_p50_s": _pct(recoveries, 50),
        "recovery_max_s": round(max(recoveries), 2) if recoveries else None,
        "recoveries_measured": len(recoveries),
        "recoveries_s": [round(r, 2) for r in recoveries],
        "start_to_assignment_s": [round(a, 2) for a in supervisor.assigned],
        "events": len(events),
        "labels": len(labels),
        "labels_learned": examples,
        "labels_lost": labels_lost,
        "lost_orders_in_features": features.lost_orders,
        "orders_without_score": len(missing),
        "customers_checked": features.customers,
        "entities_checked": features.entities,
        "feature_values_checked": features.values_checked,
        "feature_mismatches": len(features.mismatches),
        "feature_mismatch_examples": [list(m) for m in features.mismatches[:5]],
        "dead_letters_expected": expected_reasons(bad),
        "dead_letter_copies": letters.total,
        "worker_health_status": health,
        "snapshots": snapshots,
        "produce_rate_events_per_s": round(rate, 1),
        "produce_seconds": round(produced_at - started, 1),
        "drain_seconds_after_produce": round(drained_at - produced_at, 1),
        "seconds": round(time.monotonic() - t0, 1),
        "setup": (
            f"simulator seed {args.seed}; worker killed with SIGKILL after uniform({args.uptime_min}, "
            f"{args.uptime_max}) s of processing (20 % of kills during start-up, 0.5-3 s after spawn), "
            "restarted at once; session timeout 6 s"
        ),
    }
    return section


def _wait_learned(worker: Worker, n_labels: int, quiet_s: float = 45.0) -> None:
    """Until the worker learned ``n_labels`` examples, or its count stood still ``quiet_s`` seconds.

    A label whose vector is missing waits 30 s in the join before it is given up, hence the quiet time.
    """
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        n = worker.examples()
        if n is not None and n >= n_labels:
            return
        if n != last:
            last, since = n if n is not None else -1, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        if not worker.alive:
            msg = f"the worker died while draining:\n{worker.log_tail()}"
            raise AssertionError(msg)
        time.sleep(0.5)


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _print(section: dict[str, Any]) -> None:
    ok = section["lost"] == 0 and section["double_counted"] == 0 and section["labels_learned_twice"] == 0
    ok = ok and section["feature_mismatches"] == 0
    ok = ok and section["dead_letters_by_reason"] == section["dead_letters_expected"]
    table = Table(title=f"chaos: {section['kills']} kills of the worker ({'OK' if ok else 'FAILED'})")
    table.add_column("check")
    table.add_column("measured", justify="right")
    table.add_column("wanted", justify="right")
    rows: list[tuple[str, Any, Any]] = [
        ("orders scored", section["orders"] - section["orders_without_score"], section["orders"]),
        ("orders lost (features + scores + labels)", section["lost"], 0),
        ("orders counted twice", section["double_counted"], 0),
        (
            "feature values equal to the recomputation",
            section["feature_values_checked"] - section["feature_mismatches"],
            section["feature_values_checked"],
        ),
        ("labels learned", section["labels_learned"], section["labels"]),
        ("labels learned twice", section["labels_learned_twice"], 0),
    ]
    for reason, n in sorted(section["dead_letters_expected"].items()):
        rows.append((f"dead letters: {reason}", section["dead_letters_by_reason"].get(reason, 0), n))
    extra = sorted(set(section["dead_letters_by_reason"]) - set(section["dead_letters_expected"]))
    for reason in extra:
        rows.append((f"dead letters: {reason}", section["dead_letters_by_reason"][reason], 0))
    rows += [
        ("dead-letter copies (re-sent after a kill)", section["dead_letter_copies"], "-"),
        ("recovery p50 / p99 / max (s)", _fmt_recovery(section), "-"),
        ("snapshots written", section["snapshots"], "-"),
        ("drain after the producer (s)", section["drain_seconds_after_produce"], "-"),
        ("total run (s)", section["seconds"], "-"),
    ]
    for name, got, want in rows:
        cell = _s(got)
        table.add_row(name, f"[red]{cell}[/red]" if want != "-" and got != want else cell, _s(want))
    console.print(table)
    for m in section["feature_mismatch_examples"]:
        console.print(f"[red]mismatch[/red] {m[0]} {m[1]}: expected {m[2]}, Redis {m[3]}")


def _s(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _fmt_recovery(section: dict[str, Any]) -> str:
    return f"{section['recovery_p50_s']} / {section['recovery_p99_s']} / {section['recovery_max_s']}"


def main(argv: list[str] | None = None) -> int:
    """Run the chaos benchmark and write its section of bench/results.json; 1 when anything was lost."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--produce-seconds", type=float, default=None, help="default: 20 s per kill, >= 60 s")
    p.add_argument("--uptime-min", type=float, default=2.0, help="least processing time before a kill (s)")
    p.add_argument("--uptime-max", type=float, default=6.0, help="most processing time before a kill (s)")
    p.add_argument("--bad-rounds", type=int, default=3, help="how many times each malformed kind is sent")
    args = p.parse_args(argv)
    if args.produce_seconds is None:
        args.produce_seconds = max(60.0, 20.0 * args.kills)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    redis_proc = broker = None
    try:
        redis_port, kafka_port = free_port(), free_port()
        redis_proc = start_redis(redis_port, WORKDIR / "redis")
        broker = start_broker(kafka_port, WORKDIR / "tansu.log")
        section = run(args, WORKDIR, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    finally:
        for proc in (broker, redis_proc):
            if proc is not None:
                stop_process(proc.pid, binary_of(proc))
    section["machine"] = machine()
    section["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    section["seconds"] = round(time.perf_counter() - started, 1)
    write_section("chaos", section)
    _print(section)
    bad = section["lost"] or section["double_counted"] or section["labels_learned_twice"]
    bad = bad or section["feature_mismatches"]
    bad = bad or section["dead_letters_by_reason"] != section["dead_letters_expected"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
