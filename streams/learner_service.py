"""The learner service: joins each label with the vector that was scored, learns once, snapshots.

It reads every partition of the labels topic and snapshots to the registry with the offsets it has consumed.

It is the single writer of its models. It uses no consumer group: it assigns all partitions and starts
from the offsets stored in the latest snapshot, so after a crash the labels learned since that snapshot
are learned again from Kafka and none is learned twice (the snapshot is the commit).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

from config.errors import ValidationError
from learners.keys import vector_key
from learners.online import OnlineLearner
from streams.dead_letters import DeadLetter, classify
from streams.schemas import Label, parse_event

logger = logging.getLogger(__name__)


@dataclass
class LearnerSlot:
    """One model the service learns: which label target feeds it and how often it is snapshotted."""

    name: str
    target: str
    learner: OnlineLearner
    base_version: str
    features: tuple[str, ...]
    spec_hash: str = ""
    snapshot_every: int = 1000
    snapshot_seconds: float = 300.0
    join_wait_s: float = 30.0
    last_snapshot_examples: int = 0
    last_snapshot_at: float = field(default_factory=time.monotonic)
    unmatched: int = 0
    duplicates: int = 0
    snapshots: list[str] = field(default_factory=list)


@dataclass
class LabelBatchOutcome:
    """What one batch of labels did."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    drifts: dict[str, int] = field(default_factory=dict)


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class LabelJoiner:
    """Join labels with stored vectors and learn; pure logic over a sync Redis client (no Kafka)."""

    def __init__(self, slots: Sequence[LearnerSlot], redis_client: Any, key_prefix: str = "") -> None:
        self.slots = list(slots)
        self.redis = redis_client
        self.key_prefix = key_prefix

    def process(self, records: Sequence[ConsumerRecord], now: float | None = None) -> LabelBatchOutcome:
        """Learn from one batch of label records (in offset order per partition)."""
        now = time.monotonic() if now is None else now
        out = LabelBatchOutcome()
        labels: list[tuple[ConsumerRecord, Label]] = []
        for r in records:
            try:
                event = parse_event(r.value or b"", kind="label")
            except ValidationError as exc:
                out.dead_letters.append(
                    DeadLetter(classify(str(exc)), str(exc), r.topic, r.partition, r.offset, r.key, r.value)
                )
                continue
            assert isinstance(event, Label)
            labels.append((r, event))
        for slot in self.slots:
            self._learn_slot(slot, labels, records, now, out)
        return out

    def _learn_slot(
        self,
        slot: LearnerSlot,
        labels: Sequence[tuple[ConsumerRecord, Label]],
        records: Sequence[ConsumerRecord],
        now: float,
        out: LabelBatchOutcome,
    ) -> None:
        learner = slot.learner
        todo: list[tuple[Label, float]] = [(lab, first) for lab, first in learner.pending.values()]
        learner.pending.clear()
        for r, lab in labels:
            if lab.target != slot.target or r.offset < learner.offsets.get(_tp_key(r.topic, r.partition), 0):
                continue
            todo.append((lab, now))
        if todo:
            pipe = self.redis.pipeline(transaction=False)
            for lab, _ in todo:
                pipe.get(vector_key(slot.name, lab.subject_id, self.key_prefix))
            stored = pipe.execute()
            for (lab, first_seen), raw in zip(todo, stored, strict=True):
                if raw is None:
                    if now - first_seen < slot.join_wait_s:
                        learner.pending[lab.label_id] = (lab, first_seen)
                    else:
                        slot.unmatched += 1
                    continue
                x = json.loads(raw)["x"]
                outcome = learner.learn_label(lab.label_id, x, lab.value, lab.event_time)
                if outcome is None:
                    slot.duplicates += 1
                    continue
                out.learned[slot.name] = out.learned.get(slot.name, 0) + 1
                out.losses.setdefault(slot.name, []).append(outcome.loss)
                if outcome.drift:
                    out.drifts[slot.name] = out.drifts.get(slot.name, 0) + 1
        for r in records:
            key = _tp_key(r.topic, r.partition)
            learner.offsets[key] = max(learner.offsets.get(key, 0), r.offset + 1)

    def due_snapshots(self, now: float | None = None) -> list[LearnerSlot]:
        """Slots whose snapshot policy (every N examples or T seconds with new examples) says 'now'."""
        now = time.monotonic() if now is None else now
        due = []
        for s in self.slots:
            new = s.learner.examples_learned - s.last_snapshot_examples
            if new >= s.snapshot_every or (new > 0 and now - s.last_snapshot_at >= s.snapshot_seconds):
                due.append(s)
        return due


def snapshot_metadata(slot: LearnerSlot, parent: str | None) -> dict[str, Any]:
    """Metadata stored with a snapshot."""
    learner = slot.learner
    return {
        "time": datetime.now(UTC).isoformat(),
        "spec_hash": slot.spec_hash,
        "features": list(slot.features),
        "metrics": learner.metric_values(),
        "examples_learned": learner.examples_learned,
        "offsets": dict(learner.offsets),
        "parent_version": parent,
        "drift_alarms": learner.drift_alarms,
    }


class LearnerService(Service):
    """Consume the labels topic from the snapshots' offsets; learn; snapshot off the hot path."""

    def __init__(
        self,
        joiner: LabelJoiner,
        bootstrap: str,
        topic: str,
        registry: Any,
        on_batch: Callable[[LabelBatchOutcome], Awaitable[None]] | None = None,
        batch_max: int = 2000,
        batch_timeout_ms: int = 100,
        **kwargs: Any,
    ) -> None:
        self.joiner = joiner
        self.bootstrap = bootstrap
        self.topic = topic
        self.registry = registry
        self.on_batch = on_batch
        self.batch_max = batch_max
        self.batch_timeout_ms = batch_timeout_ms
        self.consumer: AIOKafkaConsumer | None = None
        self.labels_consumed = 0
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Start the consumer and assign every partition from the snapshots' offsets."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_max,
            fetch_max_wait_ms=self.batch_timeout_ms,
        )
        await self.consumer.start()
        await self._assign()

    async def _assign(self) -> None:
        assert self.consumer is not None
        parts: set[int] | None = None
        for _ in range(100):
            await self.consumer.topics()
            parts = self.consumer.partitions_for_topic(self.topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        if not parts:
            msg = f"topic {self.topic!r} has no partitions at {self.bootstrap}"
            raise RuntimeError(msg)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        for tp in tps:
            key = _tp_key(tp.topic, tp.partition)
            starts = [s.learner.offsets.get(key, 0) for s in self.joiner.slots]
            start = min(starts) if starts else 0
            if start > 0:
                self.consumer.seek(tp, start)
            else:
                await self.consumer.seek_to_beginning(tp)
        logger.info(
            "learner reads %s from %s",
            self.topic,
            {
                tp.partition: min(
                    s.learner.offsets.get(_tp_key(tp.topic, tp.partition), 0) for s in self.joiner.slots
                )
                for tp in tps
            },
        )

    async def on_started(self) -> None:
        """Start the consume loop."""
        self.add_future(self._consume())

    async def on_stop(self) -> None:
        """Stop the consumer."""
        if self.consumer is not None:
            await self.consumer.stop()

    async def _consume(self) -> None:
        assert self.consumer is not None
        backoff = 0.1
        while not self.should_stop:
            batches = await self.consumer.getmany(
                timeout_ms=self.batch_timeout_ms, max_records=self.batch_max
            )
            records = [r for rs in batches.values() for r in rs]
            try:
                outcome = self.joiner.process(records)
            except Exception:
                logger.exception("label batch failed; retrying after %.1fs", backoff)
                for tp, rs in batches.items():
                    self.consumer.seek(tp, rs[0].offset)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, 5.0)
                continue
            backoff = 0.1
            self.labels_consumed += len(records)
            if self.on_batch is not None:
                await self.on_batch(outcome)
            for slot in self.joiner.due_snapshots():
                await self.snapshot(slot)

    async def snapshot(self, slot: LearnerSlot) -> str | None:
        """Register a copy of the learner (taken now, written in a thread); returns the version."""
        learner = slot.learner
        parent = learner.version
        version = self.registry.next_snapshot_version(slot.name, slot.base_version)
        learner.version = version
        meta = snapshot_metadata(slot, parent)
        frozen = copy.deepcopy(learner)
        slot.last_snapshot_examples = learner.examples_learned
        slot.last_snapshot_at = time.monotonic()
        try:
            await asyncio.to_thread(self.registry.register, frozen, slot.name, version, meta)
        except Exception:
            learner.version = parent
            logger.exception("snapshot of %s failed; the next one will retry", slot.name)
            return None
        slot.snapshots.append(version)
        logger.info("snapshot %s %s (%d examples)", slot.name, version, learner.examples_learned)
        return version
