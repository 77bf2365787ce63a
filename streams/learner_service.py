"""The learner service: joins each label with the vector that was scored, learns once, snapshots.

It reads every partition of the labels topic and snapshots to the registry with the offsets it has consumed.
The join reads the stored vectors through a :class:`~learners.vectors.VectorStore` (Redis in the worker,
in memory in ``hanzo-ml train``), so history and the live stream learn through the same code.

It is the single writer of its models. It uses no consumer group: it assigns all partitions and starts
from the offsets stored in the latest snapshot, so after a crash the labels learned since that snapshot
are learned again from Kafka and none is learned twice (the snapshot is the commit).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

from config.errors import ValidationError
from learners.metrics import MetricSet
from learners.online import OnlineLearner
from learners.vectors import RedisVectorStore, VectorStore
from streams.dead_letters import DeadLetter, classify
from streams.schemas import Label, parse_event

logger = logging.getLogger(__name__)


@dataclass
class LearnerSlot:
    """One model the service learns: which label target feeds it and how often it is snapshotted.

    With ``learn_before_ms`` set, labels at or after that event time are not learned: the learner only
    predicts them and ``holdout`` (a :class:`~learners.metrics.MetricSet`) scores the predictions
    (``hanzo-ml train``'s time-based holdout).
    """

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
    learn_before_ms: int | None = None
    holdout: MetricSet | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    """The spec's evaluation thresholds: a snapshot becomes `production` only when they hold."""
    drift_active: Callable[[], bool] = lambda: False
    """Whether a drift alarm is active for this model (the worker's Monitor); blocks promotion."""
    gate_decisions: list[Any] = field(default_factory=list)


@dataclass
class LabelBatchOutcome:
    """What one batch of labels did."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    drifts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    """(prediction before learning, label, loss) per learned example, by model, for the drift monitor."""


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class LabelJoiner:
    """Join labels with stored vectors and learn; pure logic over a vector store (no Kafka).

    Parameters
    ----------
    slots
        The models learned (each is the single writer of its model).
    redis_client
        A sync redis-py client (unused when ``vectors`` is given).
    key_prefix
        Prefix of the Redis keys.
    vectors
        Where the scored vectors are read; default :class:`~learners.vectors.RedisVectorStore`.
    watermark
        The scoring side's event-time watermark (``OrderProcessor.watermark_ms``): a label waits for its
        vector until scoring is ``join_grace_ms`` past the label's time.

    Examples
    --------
    >>> from learners.vectors import InMemoryVectorStore
    >>> LabelJoiner([], None, vectors=InMemoryVectorStore()).process([]).learned
    {}
    """

    def __init__(
        self,
        slots: Sequence[LearnerSlot],
        redis_client: Any,
        key_prefix: str = "",
        vectors: VectorStore | None = None,
        watermark: Callable[[], int] | None = None,
        join_grace_ms: int = 86_400_000,
    ) -> None:
        self.slots = list(slots)
        self.watermark = watermark
        self.join_grace_ms = join_grace_ms
        #: whether the scoring side has consumed everything (the worker sets it from the consumer lag);
        #: a label is never given up while scoring still has a backlog
        self.caught_up: Callable[[], bool] = lambda: True
        self.redis = redis_client
        self.key_prefix = key_prefix
        self.vectors = vectors if vectors is not None else RedisVectorStore(redis_client, key_prefix)

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
        for r, lab in labels:
            if lab.target != slot.target or r.offset < learner.offsets.get(_tp_key(r.topic, r.partition), 0):
                continue
            todo.append((lab, now))
        if todo:
            stored = self.vectors.read(slot.name, [lab.subject_id for lab, _ in todo])
            # only now that the read succeeded may waiting labels leave `pending` (a Redis error keeps them)
            learner.pending.clear()
            joined: list[str] = []
            for (lab, first_seen), found in zip(todo, stored, strict=True):
                if found is None:
                    if self._gave_up(slot, lab, first_seen, now):
                        slot.unmatched += 1
                    else:
                        learner.pending[lab.label_id] = (lab, first_seen)
                    continue
                x = found["x"]
                if slot.learn_before_ms is not None and lab.event_time >= slot.learn_before_ms:
                    if slot.holdout is not None and not learner.seen(lab.label_id):
                        slot.holdout.update(lab.value, learner.score(x))
                    joined.append(lab.subject_id)
                    continue
                outcome = learner.learn_label(lab.label_id, x, lab.value, lab.event_time)
                if outcome is None:
                    slot.duplicates += 1
                    continue
                joined.append(lab.subject_id)
                out.learned[slot.name] = out.learned.get(slot.name, 0) + 1
                out.losses.setdefault(slot.name, []).append(outcome.loss)
                out.examples.setdefault(slot.name, []).append((outcome.y_pred, lab.value, outcome.loss))
                if outcome.drift:
                    out.drifts[slot.name] = out.drifts.get(slot.name, 0) + 1
            self.vectors.mark_labelled(slot.name, joined)
        for r in records:
            key = _tp_key(r.topic, r.partition)
            learner.offsets[key] = max(learner.offsets.get(key, 0), r.offset + 1)

    def _gave_up(self, slot: LearnerSlot, lab: Label, first_seen: float, now: float) -> bool:
        """Whether a label whose vector is not stored will never find it.

        An order comes before its label in event time, so while the scoring side has not reached the
        label's time (after a restart, or with a backlog) the label waits, however long that takes. It is
        given up when scoring is ``join_grace_ms`` of event time past the label and still no vector exists.
        Without a watermark (a joiner used on its own), it waits ``join_wait_s`` of wall-clock time.
        """
        if self.watermark is not None:
            return self.caught_up() and self.watermark() >= lab.event_time + self.join_grace_ms
        return now - first_seen >= slot.join_wait_s

    def pending_count(self) -> int:
        """Labels waiting for their vector, over all models."""
        return sum(len(s.learner.pending) for s in self.slots)

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
        on_promote: Callable[[str, str], None] | None = None,
        max_pending: int = 200_000,
        batch_max: int = 2000,
        batch_timeout_ms: int = 100,
        **kwargs: Any,
    ) -> None:
        self.joiner = joiner
        self.bootstrap = bootstrap
        self.topic = topic
        self.registry = registry
        self.on_batch = on_batch
        self.max_pending = max_pending
        self.on_promote = on_promote
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
            if self.joiner.pending_count() >= self.max_pending:
                # the scorer is far behind: stop reading labels, keep retrying the waiting ones
                batches = {}
                await asyncio.sleep(self.batch_timeout_ms / 1000)
            else:
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
        await self._gate(slot, version, meta)
        return version

    async def _gate(self, slot: LearnerSlot, version: str, meta: dict[str, Any]) -> None:
        """Promote the snapshot to `production` when the thresholds hold and no drift alarm is active."""
        drift = bool(slot.drift_active())
        try:
            decision = await asyncio.to_thread(
                self.registry.promote_if_gate,
                slot.name,
                version,
                slot.thresholds,
                drift,
                "snapshot gate",
            )
        except Exception:
            logger.exception("promotion gate of %s %s failed; it stays a candidate", slot.name, version)
            return
        slot.gate_decisions.append(decision)
        if decision.passed and self.on_promote is not None:
            self.on_promote(slot.name, version)
