"""The dead-letter topic, read and replayed: ``hanzo-ml dlq list`` and ``hanzo-ml dlq replay``.

Dead letters are the JSON documents written by :mod:`streams.dead_letters`. :func:`read_dead_letters` reads
the topic from the beginning up to its end at the time of the call (no consumer group, nothing committed);
:func:`replay` re-publishes each letter's original key and bytes to its source topic (or another one).

Replay gives no exactly-once guarantee: a replayed message gets a new offset, and when it is still bad the
worker dead-letters it again, as a new dead letter. Within one call each source message
(topic, partition, offset) is sent at most once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.streams.offsets import fetched_end
from hanzo.ml.streams.security import SecuritySettings, kafka_client_kwargs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredDeadLetter(DeadLetter):
    """A :class:`~streams.dead_letters.DeadLetter` read back from the dead-letter topic, with where it sits.

    Examples
    --------
    >>> raw = DeadLetter("schema", "order: field 'total'", "orders", 1, 42, b"c1", b"{}").to_json()
    >>> letter = StoredDeadLetter.from_record(raw, dlq_partition=0, dlq_offset=7, record_timestamp_ms=5)
    >>> letter.source, letter.value, letter.dlq_offset
    ('orders/1@42', b'{}', 7)
    """

    timestamp_ms: int | None = None
    dlq_partition: int = -1
    dlq_offset: int = -1

    @property
    def source(self) -> str:
        """``topic/partition@offset`` of the original message."""
        return f"{self.topic}/{self.partition}@{self.offset}"

    @property
    def source_id(self) -> tuple[str, int, int]:
        """``(topic, partition, offset)``: identifies the original message."""
        return (self.topic, self.partition, self.offset)

    @classmethod
    def from_record(
        cls, raw: bytes, *, dlq_partition: int, dlq_offset: int, record_timestamp_ms: int | None = None
    ) -> StoredDeadLetter:
        """Parse one dead-letter record; its own ``timestamp_ms`` wins over the record's timestamp."""
        base = DeadLetter.from_json(raw)
        stamp = json.loads(raw).get("timestamp_ms")
        return cls(
            reason=base.reason,
            error=base.error,
            topic=base.topic,
            partition=base.partition,
            offset=base.offset,
            key=base.key,
            value=base.value,
            timestamp_ms=stamp if isinstance(stamp, int) else record_timestamp_ms,
            dlq_partition=dlq_partition,
            dlq_offset=dlq_offset,
        )


def _unavailable(bootstrap: str, exc: BaseException, timeout: float) -> ServiceUnavailableError:
    msg = (
        f"no Kafka broker answered at {bootstrap} in time (limit {timeout}s; {type(exc).__name__}: {exc}); "
        "start one with `hanzo-ml up` or fix HANZO_KAFKA_BOOTSTRAP and the HANZO_KAFKA_SECURITY_* settings"
    )
    return ServiceUnavailableError(msg)


async def read_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    security: SecuritySettings | None = None,
    timeout: float = 30.0,
) -> list[StoredDeadLetter]:
    """Read the dead letters on ``topic``, oldest first.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the broker.
    topic
        The dead-letter topic.
    reason
        Keep only letters with this reason (see :data:`streams.dead_letters.REASONS`).
    limit
        Keep only the newest ``limit`` letters (after filtering).
    security
        Kafka security options (PLAINTEXT when None).
    timeout
        Seconds allowed for the whole read.

    Returns
    -------
    list[StoredDeadLetter]
        Every letter up to the topic's end offsets at the time of the call, ordered by time, then
        partition and offset. A topic that does not exist yields an empty list. Records that are not dead
        letters are logged and skipped.
    """
    kwargs = kafka_client_kwargs(security or SecuritySettings())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
        **kwargs,
    )
    letters: list[StoredDeadLetter] = []
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            ids = consumer.partitions_for_topic(topic) if topic in await consumer.topics() else None
            if not ids:
                logger.info(
                    "dead-letter topic %r does not exist at %s: nothing dead-lettered", topic, bootstrap
                )
                return []
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for tp in pending:  # the fetch's high watermark: Tansu's end_offsets can be low
                    ends[tp] = fetched_end(consumer, tp, ends[tp])
                for tp, records in batch.items():
                    for rec in records:
                        if rec.offset < ends[tp]:
                            letters.extend(_parse(rec.value, tp, rec.offset, rec.timestamp))
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unavailable(bootstrap, exc, timeout) from None
    finally:
        await consumer.stop()
    if reason is not None:
        letters = [x for x in letters if x.reason == reason]
    letters.sort(key=lambda x: (x.timestamp_ms or 0, x.dlq_partition, x.dlq_offset))
    if limit is not None:
        letters = letters[-limit:] if limit > 0 else []
    return letters


def _parse(raw: bytes | None, tp: TopicPartition, offset: int, stamp: int | None) -> list[StoredDeadLetter]:
    where = f"{tp.topic}/{tp.partition}@{offset}"
    if raw is None:
        logger.warning("%s is empty, not a dead letter; skipped", where)
        return []
    try:
        letter = StoredDeadLetter.from_record(
            raw, dlq_partition=tp.partition, dlq_offset=offset, record_timestamp_ms=stamp
        )
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is not a dead letter (%s: %s); skipped", where, type(exc).__name__, exc)
        return []
    return [letter]


def unique(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Drop repeats of the same source message (topic, partition, offset), keeping the first.

    Examples
    --------
    >>> a = DeadLetter("schema", "e", "orders", 0, 5, None, b"x")
    >>> b = DeadLetter("schema", "e", "orders", 0, 6, None, b"y")
    >>> [x.offset for x in unique([a, b, a])]
    [5, 6]
    """
    seen: set[tuple[str, int, int]] = set()
    kept: list[DeadLetter] = []
    for letter in letters:
        ident = (letter.topic, letter.partition, letter.offset)
        if ident not in seen:
            seen.add(ident)
            kept.append(letter)
    return kept


async def replay(
    bootstrap: str,
    letters: Sequence[DeadLetter],
    to: str | None = None,
    *,
    security: SecuritySettings | None = None,
    timeout: float = 30.0,
) -> int:
    """Publish the original key and bytes of each letter to its source topic (or to ``to``).

    Each source message (topic, partition, offset) is sent at most once per call; the broker acknowledges
    every send (``acks="all"``) before this returns. The partition is chosen by the key as usual.

    Returns
    -------
    int
        How many messages were sent.
    """
    todo = unique(letters)
    if not todo:
        return 0
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=int(timeout * 1000),
        **kafka_client_kwargs(security or SecuritySettings()),
    )
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
            futures = [await producer.send(to or x.topic, value=x.value, key=x.key) for x in todo]
            await asyncio.gather(*futures)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unavailable(bootstrap, exc, timeout) from None
    finally:
        await producer.stop()
    logger.info("replayed %d dead letters%s", len(todo), f" to {to}" if to else "")
    return len(todo)
