"""Backfill: replay history through :meth:`FeatureStore.apply_batch`, the code the live stream runs.

Two sources:

- a history file (:func:`history_records`): the events of a JSONL file (:func:`streams.simulation.read_jsonl`)
  sorted by event time (stable, so events with the same time keep their file order), without offsets, so
  event-id dedupe alone makes a second run change nothing;
- topics read from the beginning (:func:`topic_records`): every partition with ``group_id=None`` (nothing is
  committed), each record with its topic, partition and offset, so the offset fences make a replay over
  state the live worker wrote a no-op. Partitions are merged by event time, each in its own offset order.

:func:`backfill` applies the records to every entity of the store, in batches; labels carry no features
and are skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from hanzo.ml.config.errors import ServiceUnavailableError, ValidationError
from hanzo.ml.features.backend import EventRecord
from hanzo.ml.features.store import FeatureStore
from hanzo.ml.schemas.events import CustomerEvent, Order, parse_event
from hanzo.ml.schemas.jsonl import read_jsonl

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000


@dataclass
class BackfillReport:
    """What a backfill did: events read and applied, and result statuses per entity."""

    events: int = 0
    skipped: int = 0
    batches: int = 0
    statuses: dict[str, Counter[str]] = field(default_factory=dict)


def history_records(path: str | Path) -> list[EventRecord]:
    """Orders and customer events of a history file, sorted by event time (stable), without offsets."""
    events = [e for e in read_jsonl(path) if isinstance(e, Order | CustomerEvent)]
    events.sort(key=lambda e: e.event_time)
    return [EventRecord(e) for e in events]


def merge_by_event_time(partitions: Iterable[Sequence[EventRecord]]) -> list[EventRecord]:
    """Merge per-partition record lists by event time, keeping each partition's own order.

    Examples
    --------
    >>> from types import SimpleNamespace as E
    >>> a = [EventRecord(E(event_time=t), "o", 0, i) for i, t in enumerate([1, 5, 3])]
    >>> b = [EventRecord(E(event_time=t), "o", 1, i) for i, t in enumerate([2, 4])]
    >>> [(r.partition, r.offset) for r in merge_by_event_time([a, b])]
    [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
    """
    return list(heapq.merge(*partitions, key=lambda r: r.event.event_time))


async def read_topics(bootstrap: str, topics: Sequence[str], timeout_s: float = 30.0) -> list[EventRecord]:
    """Read ``topics`` from the beginning to their current end (``group_id=None``); invalid records skipped.

    Raises
    ------
    ServiceUnavailableError
        When the broker does not answer or a topic has no partitions.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
    except Exception as exc:  # aiokafka raises its own errors, OSError or TimeoutError
        await consumer.stop()
        msg = f"cannot read topics {list(topics)} from Kafka at {bootstrap} ({exc}); check the address"
        raise ServiceUnavailableError(msg) from exc
    try:
        await consumer.topics()  # fetches the cluster metadata
        parts: list[TopicPartition] = []
        for topic in topics:
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                msg = f"topic {topic!r} has no partitions at {bootstrap}; check the topic name"
                raise ServiceUnavailableError(msg)
            parts += [TopicPartition(topic, p) for p in sorted(ids)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        per_part: dict[TopicPartition, list[EventRecord]] = {tp: [] for tp in parts}
        todo = {tp for tp in parts if ends[tp] > 0}
        skipped = 0
        while todo:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500, max_records=10_000), timeout_s)
            for tp in todo:  # the fetch's high watermark: Tansu's end_offsets can be low (streams.offsets)
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset >= ends[tp]:
                        continue
                    try:
                        event = parse_event(m.value or b"")
                    except ValidationError:
                        skipped += 1
                        continue
                    if isinstance(event, Order | CustomerEvent):
                        per_part[tp].append(EventRecord(event, m.topic, m.partition, m.offset))
                if msgs and msgs[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        if skipped:
            logger.warning("backfill skipped %d invalid records of %s", skipped, list(topics))
        return merge_by_event_time(per_part.values())
    finally:
        await consumer.stop()


def topic_records(bootstrap: str, topics: Sequence[str], timeout_s: float = 30.0) -> list[EventRecord]:
    """:func:`read_topics`, run to completion (no running event loop in this thread)."""
    return asyncio.run(read_topics(bootstrap, topics, timeout_s))


def backfill(
    store: FeatureStore,
    records: Sequence[EventRecord],
    entities: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    """Apply ``records`` in order to every entity (default: all of the store's), ``batch_size`` at a time.

    ``progress(n)`` is called after each batch with the number of records it held.

    Examples
    --------
    >>> from hanzo.ml.features import InMemoryOnlineStore
    >>> from hanzo.ml.schemas.events import Order, OrderItem
    >>> store = FeatureStore(backend=InMemoryOnlineStore(), clock=lambda: 1_700_000_000.0)
    >>> o = Order(order_id="o1", customer_id="c1", event_time=1_700_000_000_000, total=5.0, currency="EUR",
    ...           items=[OrderItem(product_id="p1", category="books", quantity=2, unit_price=2.5)],
    ...           payment_method="card", billing_country="DE", shipping_country="DE", channel="web")
    >>> report = backfill(store, [EventRecord(o)])
    >>> dict(report.statuses["customer"]), store.get_features(product_id="p1", features=["units_sold_24h"])
    ({'applied': 1}, {'units_sold_24h': 2.0})
    """
    if batch_size < 1:
        msg = f"batch_size={batch_size}; give 1 or more"
        raise ValidationError(msg)
    names = list(entities) if entities is not None else list(store.entities)
    report = BackfillReport(statuses={e: Counter() for e in names})
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        for entity in names:
            report.statuses[entity].update(r.status for r in store.apply_batch(entity, batch))
        report.events += len(batch)
        report.batches += 1
        if progress is not None:
            progress(len(batch))
    logger.info("backfill: %d events in %d batches: %s", report.events, report.batches, report.statuses)
    return report
