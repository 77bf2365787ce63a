"""Orders produced with librdkafka (confluent-kafka) reach the worker on the embedded broker.

librdkafka before 2.2.0 misreads the tagged fields of Tansu's ApiVersions v3 reply (it skips each one a byte
short: "ApiVersionRequest failed: Local: Read underflow", librdkafka PR #4278); no client setting avoids that,
since any ``broker.version.fallback`` from 0.10 on sends ApiVersions again and older ones speak message
formats Tansu refuses. confluent-kafka >= 2.2 ships a fixed librdkafka and needs no special setting.
"""

from __future__ import annotations

import asyncio
import json

import confluent_kafka
import pytest
import redis

from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.schemas.events import Label, Order, to_json
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, event_key
from tests.chaos_support import Worker, _read_topic, scrape, wait_for, worker_env

pytestmark = pytest.mark.integration

N_ORDERS = 400


def test_the_bundled_librdkafka_is_one_that_reads_tansus_api_versions() -> None:
    major, minor, *_ = (int(p) for p in confluent_kafka.libversion()[0].split("."))
    assert (major, minor) >= (2, 2)


def test_confluent_kafka_orders_are_scored(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path):
    history = list(
        Simulator(SimulatorConfig(seed=5, orders=N_ORDERS, customers=80, orders_per_day=300)).events()
    )
    orders = [e for e in history if isinstance(e, Order)]
    labels = [e for e in history if isinstance(e, Label)]
    topic_of = {"order": topic_names["orders"], "customer_event": topic_names["events"],
                "label": topic_names["labels"]}
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": False, "acks": "all", "linger.ms": 5}
    )
    failures: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for event in history:
        producer.produce(topic_of[event.kind], key=event_key(event), value=to_json(event),
                         on_delivery=delivered)
        producer.poll(0)
    producer.produce(topic_names["orders"], key=b"bad", value=b'{"order_id": "x"', on_delivery=delivered)
    assert producer.flush(60) == 0
    assert failures == []

    worker = Worker(
        worker_env(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "reg", tmp_path / "state"),
        tmp_path,
    )
    worker.start()
    client = redis.Redis.from_url(redis_url)
    try:
        def n_scores() -> int:
            return sum(1 for _ in client.scan_iter(match=f"{key_prefix}score:fraud_detection:*", count=1000))

        def metric(name: str) -> float:
            return scrape(worker.metrics_port)[name]

        wait_for("every order scored", lambda: n_scores() == N_ORDERS, 180, worker)
        wait_for("every label learned", lambda: metric("hanzo_labels_learned_total") >= len(labels), 180,
                 worker)
        for o in orders[::40]:  # what a shop's service reads back: one GET per order
            record = json.loads(client.get(f"{key_prefix}score:fraud_detection:{o.order_id}"))
            assert record["model"] == "fraud_detection" and 0.0 <= record["score"] <= 1.0
        wait_for("the bad message dead-lettered", lambda: metric("hanzo_dead_letters_total") >= 1, 180,
                 worker)
        (letter,) = [DeadLetter.from_json(v)
                     for v in asyncio.run(_read_topic(kafka_bootstrap, topic_names["dead-letters"]))]
        assert letter.value == b'{"order_id": "x"' and letter.key == b"bad" and letter.reason
    finally:
        worker.stop()
        client.close()
