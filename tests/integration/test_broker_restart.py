"""The embedded broker restarted empty under a running worker: it reconnects and goes on with new events.

Tansu keeps topics and group offsets in memory, so after a restart on the same port every topic is gone
and new events get offsets 0, 1, 2... again, below the offset fences Redis still holds. The worker must
report ``degraded`` while the broker is away, count the errors, recreate its topics, start a new broker
epoch (fences cleared, the new topics read from the beginning, the learner's labels too) and lose nothing
it had processed before: scores, features and registry versions of the first part stay, and the features
after the second part equal a recomputation over both parts.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient

from hanzo.ml.config.errors import RegistryError
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import Label, Order
from hanzo.ml.streams.embedded import binary_of, free_port, start_broker, stop_process
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import (
    MODEL,
    Worker,
    compare_features,
    labels_of,
    missing_scores,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

DOWN_S = 4.0


def _two_parts(first_labels: int, orders: int) -> tuple[list, list]:
    """One simulated stream cut after its ``first_labels``-th label (the parts share customers)."""
    sim = Simulator(
        SimulatorConfig(
            seed=53,
            orders=orders,
            customers=150,
            orders_per_day=2000,
            browse_events_per_order=0.5,
            chargeback_delay_days=(0.2, 1.0),
            settle_delay_days=(0.2, 1.0),
            fraud_rate=0.05,
        )
    )
    events = list(sim.events())
    seen = 0
    for i, e in enumerate(events):
        seen += isinstance(e, Label)
        if seen == first_labels:
            return events[: i + 1], events[i + 1 :]
    raise AssertionError("the stream has fewer labels than asked")


def _versions(registry: Registry) -> set[str]:
    try:
        return {v.version for v in registry.list_versions(MODEL)}
    except RegistryError:  # nothing registered yet
        return set()


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_worker_survives_an_empty_broker_restart(redis_url, topic_names, key_prefix, tmp_path):
    # 1,050 labels before the restart: the fraud pipeline snapshots every 1,000 examples
    first, second = _two_parts(1050, 1600)
    every = first + second
    kinds = {"order": topic_names["orders"], "customer_event": topic_names["events"]}
    kinds["label"] = topic_names["labels"]
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_broker(port, tmp_path / "tansu-0.log")
    env = worker_env(bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state")
    worker = Worker(env, tmp_path / "logs")
    client = redis.Redis.from_url(redis_url)
    registry = Registry(tmp_path / "registry")
    try:
        asyncio.run(produce(first, bootstrap, kinds))
        worker.start()
        n_first = len(first) - len(labels_of(first))
        wait_for("the first part processed", lambda: worker.processed() >= n_first, 120, worker)
        wait_for(
            "the first labels learned", lambda: (worker.examples() or 0) >= len(labels_of(first)), 60, worker
        )
        wait_for("a snapshot", lambda: bool(_versions(registry)), 60, worker)
        versions = _versions(registry)
        first_orders = [e.order_id for e in first if isinstance(e, Order)]
        assert missing_scores(client, key_prefix, first_orders) == []

        broker.kill()  # SIGKILL our own child: the broker and everything it held in memory are gone
        broker.wait(10)
        statuses: list[tuple[int, str, str]] = []
        down_until = time.monotonic() + DOWN_S
        while time.monotonic() < down_until:
            code, body = worker.health()
            statuses.append((code, body["status"], body.get("kafka", "")))
            time.sleep(0.25)
        broker = start_broker(port, tmp_path / "tansu-1.log")  # same port, empty
        assert (503, "degraded", "failing") in statuses, statuses
        assert worker.metrics()["hanzo_broker_errors_total"] > 0

        # the worker recreates its topics by itself (the producer below does not create them)
        wanted = set(topic_names.values())
        wait_for("the topics recreated", lambda: wanted <= asyncio.run(_topics(bootstrap)), 60, worker)
        wait_for("health ok again", lambda: worker.health()[1]["status"] == "ok", 60, worker)
        asyncio.run(produce(second, bootstrap, kinds, partitions=None))
        n_every = len(every) - len(labels_of(every))
        wait_for("the second part processed", lambda: worker.processed() >= n_every, 120, worker)
        wait_for("every label learned", lambda: (worker.examples() or 0) >= len(labels_of(every)), 90, worker)

        assert worker.alive and worker.starts == 1
        assert worker.examples() == len(labels_of(every))  # none lost, none learned twice
        orders = [e.order_id for e in every if isinstance(e, Order)]
        assert missing_scores(client, key_prefix, orders) == []
        report = compare_features(client, key_prefix, every)
        assert report.lost_orders == 0 and report.double_counted_orders == 0
        assert report.mismatches == []
        assert versions <= _versions(registry)
        log = worker.log_path.read_text(errors="replace")
        assert "starting a new broker epoch" in log
        assert client.get(f"{key_prefix}hanzo:broker-epoch") == b"1"
    finally:
        worker.stop()
        client.close()
        stop_process(broker.pid, binary_of(broker))
