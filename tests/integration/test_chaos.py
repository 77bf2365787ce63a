"""Nothing lost, nothing counted twice: the real worker killed with SIGKILL while a stream flows in.

A background producer sends a simulated shop (orders, customer events, labels) at a steady rate with
malformed messages of every kind mixed in; a supervisor kills the worker at random points and restarts it
(same consumer group, same registry folder). Once the stream is drained, Redis must equal our own
recomputation from the produced events, every order must have a score, every label must have been learned
exactly once and every malformed message must be a dead letter with its reason. ``bench.chaos`` is the
long version (100,000 orders, 10 kills).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import (
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

pytestmark = pytest.mark.integration

N_ORDERS = 5000
KILLS = 3


def test_kill9_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
):
    sim = Simulator(
        SimulatorConfig(
            seed=21,
            orders=N_ORDERS,
            customers=400,
            orders_per_day=3000,
            browse_events_per_order=0.5,
            chargeback_delay_days=(0.2, 1.0),
            settle_delay_days=(0.2, 1.0),
            fraud_rate=0.05,
        )
    )
    events = list(sim.events())
    order_ids = [e.order_id for e in events if e.kind == "order"]
    labels = labels_of(events)
    bad = malformed_messages()
    assert len(order_ids) == N_ORDERS and len(labels) == N_ORDERS

    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    worker = Worker(env, tmp_path / "logs")
    producer = BackgroundProducer(events, kafka_bootstrap, topic_names, rate=len(events) / 50, bad=bad)
    supervisor = Supervisor(worker, kills=KILLS, uptime_s=(1.0, 3.0), seed=21)
    client = redis.Redis.from_url(redis_url)
    try:
        producer.start()
        worker.start()
        supervisor.start()
        wait_for("the kills", lambda: supervisor.done_kills == KILLS or not supervisor.is_alive(), 180)
        assert supervisor.error is None, supervisor.error
        assert supervisor.done_kills == KILLS
        producer.join(120)
        assert producer.error is None, producer.error

        wait_for("every order scored", lambda: count_scores(client, key_prefix) >= N_ORDERS, 120, worker)
        wait_for("every label learned", lambda: (worker.examples() or 0) >= len(labels), 120, worker)
        letters_wanted = sum(expected_reasons(bad).values())
        wait_for(
            "every malformed message dead-lettered",
            lambda: (
                sum(read_dead_letters(kafka_bootstrap, topic_names["dead-letters"]).by_reason.values())
                >= letters_wanted
            ),
            60,
            worker,
        )

        assert missing_scores(client, key_prefix, order_ids) == []
        report = compare_features(client, key_prefix, events)
        assert report.customers > 300 and report.values_checked > 300 * 15
        assert report.entities["product"] > 10 and report.entities["category"] > 3  # fed from every partition
        assert report.lost_orders == 0 and report.double_counted_orders == 0
        assert report.mismatches == []
        assert worker.examples() == len(labels)
        letters = read_dead_letters(kafka_bootstrap, topic_names["dead-letters"])
        assert letters.by_reason == expected_reasons(bad)
        assert worker.health()[0] == 200
        assert len(supervisor.recoveries) >= 1
    finally:
        supervisor.stop()
        supervisor.join(10)
        worker.stop()
        client.close()


def test_a_label_waits_for_a_lagging_scorer(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path):
    """Labels read 35 s before their orders are scored (the scoring side lags) are still learned once."""
    events = list(
        Simulator(
            SimulatorConfig(seed=23, orders=200, customers=50, settle_delay_days=(0.2, 1.0), fraud_rate=0.05)
        ).events()
    )
    labels = [e for e in events if e.kind == "label"]
    rest = [e for e in events if e.kind != "label"]
    kinds = {"order": topic_names["orders"], "customer_event": topic_names["events"]}
    kinds["label"] = topic_names["labels"]
    asyncio.run(produce(labels, kafka_bootstrap, kinds))
    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    worker = Worker(env, tmp_path / "logs")
    try:
        worker.start()
        wait_for("the labels read", lambda: worker.health()[1]["labels"] >= len(labels), 90, worker)
        time.sleep(35)  # the scoring side is 35 s behind the learner
        asyncio.run(produce(rest, kafka_bootstrap, kinds))
        wait_for("the orders scored", lambda: worker.processed() >= len(rest), 60, worker)
        wait_for("every label learned", lambda: (worker.examples() or 0) >= len(labels), 20, worker)
        assert worker.examples() == len(labels)
    finally:
        worker.stop()
