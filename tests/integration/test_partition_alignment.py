"""The batch consumer hands a backlog's partitions out together, oldest record first (real Tansu broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, ConsumerRecord

from hanzo.ml.streams.batch_consumer import BatchConsumer, ConsumerOptions
from hanzo.ml.streams.topics import ensure_topics

PARTITIONS = 4
PER_PARTITION = 1500
T0 = 1_767_225_600_000


async def _produce(bootstrap: str, topic: str) -> None:
    """Each partition's records in timestamp order; the partitions interleave in time (record i at T0 + i)."""
    await ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for p in range(PARTITIONS):  # partition by partition: the log order says nothing about time
            for j in range(PER_PARTITION):
                i = j * PARTITIONS + p
                pending.append(await producer.send(topic, f"{i}".encode(), partition=p, timestamp_ms=T0 + i))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, align_wait_ms: int) -> list[ConsumerRecord]:
    got: list[ConsumerRecord] = []

    async def handler(records: Sequence[ConsumerRecord]) -> None:
        got.extend(records)  # each batch as handed to the worker's handler

    options = ConsumerOptions(
        bootstrap=bootstrap,
        group_id=f"align-{uuid.uuid4().hex[:8]}",
        topics=(topic,),
        batch_max=200,
        align_wait_ms=align_wait_ms,
    )
    consumer = BatchConsumer(options, handler)
    await consumer.start()
    try:
        async with asyncio.timeout(120):
            while len(got) < PARTITIONS * PER_PARTITION:
                await asyncio.sleep(0.02)
        assert await consumer.lag() == {topic: 0}
    finally:
        await consumer.stop()
    return got


def test_backlog_partitions_come_out_in_timestamp_order(kafka_bootstrap: str) -> None:
    topic = f"align-{uuid.uuid4().hex[:8]}"
    asyncio.run(_produce(kafka_bootstrap, topic))
    # the wait is long so that only the order rule is tested, never the machine's speed
    got = asyncio.run(_consume(kafka_bootstrap, topic, align_wait_ms=60_000))

    offsets: dict[int, list[int]] = {}
    for r in got:
        offsets.setdefault(r.partition, []).append(r.offset)
    # every record once, each partition in its offset order (what the offset fences need)
    assert offsets == {p: list(range(PER_PARTITION)) for p in range(PARTITIONS)}
    stamps = [r.timestamp for r in got]
    assert stamps == sorted(stamps), "a record came out before an older one of another partition"
    assert [int(r.value) for r in got] == list(range(PARTITIONS * PER_PARTITION))
