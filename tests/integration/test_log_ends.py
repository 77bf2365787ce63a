"""Readers that stop at a topic's end read every record, also on the embedded broker.

Tansu answers ``ListOffsets`` (latest) below the last offset + 1 when the last produce request carried
several records (streams/offsets.py). Each reader here is fed one batched produce and must see all of it.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from hanzo.ml.features.backfill import read_topics
from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.schemas.events import Order, to_json
from hanzo.ml.streams.dlq import read_dead_letters
from hanzo.ml.streams.offsets import broker_ends
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from hanzo.ml.streams.topics import ensure_topics

pytestmark = pytest.mark.integration


async def _produce_batched(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    await ensure_topics(bootstrap, {topic: partitions})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, acks="all")
    await producer.start()
    try:  # no await between sends: the records of a partition go out in one request
        sent = [await producer.send(topic, v, partition=i % partitions) for i, v in enumerate(values)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def test_broker_ends_are_the_last_offset_plus_one(kafka_bootstrap: str, topic_names: dict[str, str]) -> None:
    topic = topic_names["scores"]
    asyncio.run(_produce_batched(kafka_bootstrap, topic, [b"x"] * 301, partitions=3))
    tps = [TopicPartition(topic, p) for p in range(3)]
    assert asyncio.run(broker_ends(kafka_bootstrap, tps)) == {tps[0]: 101, tps[1]: 100, tps[2]: 100}


def test_read_dead_letters_reads_a_batch_to_its_last_letter(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    topic = topic_names["dead-letters"]
    letters = [DeadLetter("schema", f"bad {i}", "orders", 0, i, None, b"{}").to_json() for i in range(120)]
    asyncio.run(_produce_batched(kafka_bootstrap, topic, letters, 2))
    read = asyncio.run(read_dead_letters(kafka_bootstrap, topic))
    assert sorted(x.offset for x in read) == list(range(120))


def test_backfill_from_the_topics_reads_every_order(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    orders = [
        e
        for e in Simulator(SimulatorConfig(seed=4, orders=400, customers=50)).events()
        if isinstance(e, Order)
    ]
    asyncio.run(_produce_batched(kafka_bootstrap, topic_names["orders"], [to_json(o) for o in orders], 2))
    records = asyncio.run(read_topics(kafka_bootstrap, [topic_names["orders"]]))
    assert sorted(r.event.event_id for r in records) == sorted(o.order_id for o in orders)
