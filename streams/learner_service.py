"""The learner service: joins each label with the vector that was scored, learns once, snapshots.

It reads every partition of the labels topic and snapshots to the registry with the offsets it has consumed.
The join reads the stored vectors through a :class:`~learners.vectors.VectorStore` (Redis in the worker,
in memory in ``hanzo-ml train``), so history and the live stream learn through the same code.

It is the single writer of its models. It uses no consumer group: it assigns all partitions and starts
from the offsets stored in the latest snapshot, so after a crash the labels learned since that snapshot
are learned again from Kafka and none is learned twice (the snapshot is the commit).

With several workers, only the holder of the learner lease learns (:mod:`streams.leadership`): the
service is then built with ``autostart=False`` and the lease holder calls
:meth:`LearnerService.start_learning` and :meth:`LearnerService.stop_learning`; ``fence()`` (true while
the lease is surely held) is checked before each batch is learned and before each snapshot is written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import pickle
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.mini_batch import learn_labels_in_chunks
from hanzo.ml.learners.online import LearnedBatch, OnlineLearner
from hanzo.ml.learners.vectors import RedisVectorStore, VectorStore
from hanzo.ml.schemas.dead_letters import DeadLetter, classify
from hanzo.ml.schemas.events import Label, parse_event
from hanzo.ml.schemas.label_wire import WireLabel, decode_label, to_label
from hanzo.ml.streams.offsets import broker_ends

logger = logging.getLogger(__name__)

#: a label as the join reads it: decoded by msgspec, or by pydantic (the fallback; and the waiting ones)
AnyLabel = Label | WireLabel


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
    snapshot_min_seconds: float = 0.0
    """Least time between two snapshots taken by this process (the first one is never held back)."""
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
    mini_batch: int = 0
    """Labels per River ``learn_many`` chunk (``training.mini_batch.size``); 0: learn each label (default)."""


@dataclass
class LabelBatchOutcome:
    """What one batch of labels did."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    drifts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    """(prediction before learning, label, loss) per learned example, by model, for the drift monitor."""
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The feature vector of each learned example, by model, in the order of ``examples`` (drift response)."""


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
    retry_every_s
        With a watermark, a waiting label is looked up again once scoring has reached its event time (its
        order is older, so its vector is then likely stored), and every label waiting is looked up again
        at least this often (an idle partition can hold the watermark back).

    Examples
    --------
    >>> from hanzo.ml.learners.vectors import InMemoryVectorStore
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
        retry_every_s: float = 1.0,
    ) -> None:
        self.slots = list(slots)
        self.watermark = watermark
        self.join_grace_ms = join_grace_ms
        self.retry_every_s = retry_every_s
        self._retried_at: dict[str, float] = {}  # model -> when every waiting label was last looked up
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
        labels: list[AnyLabel] = []
        sources: list[ConsumerRecord] = []  # the record of each label
        for r in records:
            data = r.value or b""
            # msgspec; what it cannot take for sure, pydantic accepts or rejects (and names the reason)
            lab: AnyLabel | None = decode_label(data)
            if lab is None:
                try:
                    event = parse_event(data, kind="label")
                except ValidationError as exc:
                    out.dead_letters.append(
                        DeadLetter(
                            classify(str(exc)), str(exc), r.topic, r.partition, r.offset, r.key, r.value
                        )
                    )
                    continue
                assert isinstance(event, Label)
                lab = event
            labels.append(lab)
            sources.append(r)
        for slot in self.slots:
            self._learn_slot(slot, labels, sources, records, now, out)
        return out

    def _learn_slot(
        self,
        slot: LearnerSlot,
        labels: Sequence[AnyLabel],
        sources: Sequence[ConsumerRecord],
        records: Sequence[ConsumerRecord],
        now: float,
        out: LabelBatchOutcome,
    ) -> None:
        learner = slot.learner
        # waiting labels are looked up again when they may have found their vector, not on every batch:
        # with labels far ahead of scoring, thousands wait, and reading them all for each batch of
        # labels made the join quadratic
        waiting = learner.pending
        last = self._retried_at.get(slot.name, -math.inf)
        if not waiting or self.watermark is None or now - last >= self.retry_every_s:
            self._retried_at[slot.name] = now
            retried: list[tuple[AnyLabel, float]] = list(waiting.values())
        else:
            reached = self.watermark()
            retried = [(lab, first) for lab, first in waiting.values() if lab.event_time <= reached]
        todo = [lab for lab, _ in retried]  # the labels to join: the waiting ones retried, then the new ones
        first_seen = [first for _, first in retried]
        floors: dict[
            tuple[str, int], int
        ] = {}  # the learner's offset per partition (a record below: learned)
        for r, lab in zip(sources, labels, strict=True):
            if lab.target != slot.target:
                continue
            tp = (r.topic, r.partition)
            floor = floors.get(tp)
            if floor is None:
                floor = floors[tp] = learner.offsets.get(_tp_key(r.topic, r.partition), 0)
            if r.offset >= floor:
                todo.append(lab)
        first_seen += [now] * (len(todo) - len(first_seen))
        if todo:
            stored = self.vectors.read(slot.name, [lab.subject_id for lab in todo])
            # only now that the read succeeded may the labels read leave `pending` (a Redis error keeps them)
            for lab in todo:
                waiting.pop(lab.label_id, None)
            joined: list[str] = []
            batch: list[AnyLabel] = []  # to learn, in order, up to the next holdout label
            xs: list[dict[str, Any]] = []
            for lab, first, found in zip(todo, first_seen, stored, strict=True):
                if found is None:
                    if self._gave_up(slot, lab, first, now):
                        slot.unmatched += 1
                    else:
                        learner.pending[lab.label_id] = (to_label(lab), first)
                    continue
                x = found["x"]
                if slot.learn_before_ms is not None and lab.event_time >= slot.learn_before_ms:
                    self._learn_batch(slot, batch, xs, joined, out)  # scored by the model learned so far
                    batch, xs = [], []
                    if slot.holdout is not None and not learner.seen(lab.label_id):
                        slot.holdout.update(lab.value, learner.score(x))
                    joined.append(lab.subject_id)
                    continue
                batch.append(lab)
                xs.append(x)
            self._learn_batch(slot, batch, xs, joined, out)
            self.vectors.mark_labelled(slot.name, joined)
        ends: dict[tuple[str, int], int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            if r.offset >= ends.get(tp, -1):
                ends[tp] = r.offset
        for (topic, partition), offset in ends.items():
            key = _tp_key(topic, partition)
            learner.offsets[key] = max(learner.offsets.get(key, 0), offset + 1)

    @staticmethod
    def _learn_batch(
        slot: LearnerSlot,
        batch: Sequence[AnyLabel],
        xs: Sequence[dict[str, Any]],
        joined: list[str],
        out: LabelBatchOutcome,
    ) -> None:
        """Learn joined labels in order (:meth:`OnlineLearner.learn_labels`); add what they did to ``out``.

        With ``training.mini_batch`` they are learned in River ``learn_many`` chunks
        (:mod:`learners.mini_batch`).
        """
        if not batch:
            return
        if slot.mini_batch:
            done = LearnedBatch()
            items = [(lab.label_id, x, lab.value, lab.event_time) for lab, x in zip(batch, xs, strict=True)]
            for i, outcome in enumerate(learn_labels_in_chunks(slot.learner, items, slot.mini_batch)):
                done.add(i, outcome)
        else:
            done = slot.learner.learn_labels(
                [lab.label_id for lab in batch],
                xs,
                [lab.value for lab in batch],
                [lab.event_time for lab in batch],
            )
        slot.duplicates += len(batch) - len(done.index)  # already learned, or not finite
        if not done.index:
            return
        learned = [batch[i] for i in done.index]
        name = slot.name
        joined.extend([lab.subject_id for lab in learned])
        out.learned[name] = out.learned.get(name, 0) + len(learned)
        out.losses.setdefault(name, []).extend(done.loss)
        out.examples.setdefault(name, []).extend(
            zip(done.y_pred, [lab.value for lab in learned], done.loss, strict=True)
        )
        out.inputs.setdefault(name, []).extend([xs[i] for i in done.index])
        drifts = sum(done.drift)
        if drifts:
            out.drifts[name] = out.drifts.get(name, 0) + drifts

    def _gave_up(self, slot: LearnerSlot, lab: AnyLabel, first_seen: float, now: float) -> bool:
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
        """Slots whose snapshot policy (every N examples or T seconds with new examples) says 'now'.

        A snapshot is held back while ``snapshot_min_seconds`` have not passed since the previous one.
        """
        now = time.monotonic() if now is None else now
        return [
            s
            for s in self.slots
            if snapshot_due(
                s.learner.examples_learned - s.last_snapshot_examples,
                now - s.last_snapshot_at,
                bool(s.snapshots),
                s.snapshot_every,
                s.snapshot_seconds,
                s.snapshot_min_seconds,
            )
        ]


def snapshot_due(
    new_examples: int, since_s: float, taken: bool, every: int, every_s: float, min_s: float
) -> bool:
    """Whether a learner with ``new_examples`` since its last snapshot, ``since_s`` ago, snapshots now.

    Every ``every`` new examples, or after ``every_s`` seconds with new ones; never within ``min_s`` of
    the previous snapshot this process took (``taken``: there was one).

    Examples
    --------
    >>> snapshot_due(1000, 0.5, False, 1000, 300, 2.0), snapshot_due(1000, 0.5, True, 1000, 300, 2.0)
    (True, False)
    >>> snapshot_due(3, 301.0, True, 1000, 300, 2.0), snapshot_due(0, 301.0, True, 1000, 300, 2.0)
    (True, False)
    """
    if new_examples <= 0 or (taken and since_s < min_s):
        return False
    return new_examples >= every or since_s >= every_s


class PickledModel:
    """A model pickled now: the registry pickling this later writes the model as it was (a snapshot).

    ``pickle.dumps`` on the event loop is about 7x faster than ``copy.deepcopy`` for a learner holding its
    learned label ids; the registry's write (and its own pickling of these bytes) runs in a thread.

    Examples
    --------
    >>> frozen = PickledModel({"w": [1.0]})
    >>> pickle.loads(pickle.dumps(frozen))
    {'w': [1.0]}
    """

    __slots__ = ("data",)

    def __init__(self, model: Any) -> None:
        self.data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (pickle.loads, (self.data,))


async def register_snapshot(
    registry: Any,
    frozen: Any,
    name: str,
    version: str,
    meta: dict[str, Any],
    learner: Any,
    parent: str | None,
) -> bool:
    """Write ``frozen`` as ``name@version`` in a thread; True when written.

    The caller set ``learner.version = version`` before freezing it: a failed write puts ``parent`` back,
    and the next snapshot retries.
    """
    try:
        await asyncio.to_thread(registry.register, frozen, name, version, meta)
    except Exception:
        learner.version = parent
        logger.exception("snapshot of %s failed; the next one will retry", name)
        return False
    logger.info("snapshot %s %s (%d examples)", name, version, learner.examples_learned)
    return True


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


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the label consume loop failed", exc_info=task.exception())


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
        client_kwargs: Mapping[str, Any] | None = None,
        autostart: bool = True,
        **kwargs: Any,
    ) -> None:
        self.joiner = joiner
        self.autostart = autostart
        #: whether this worker may still write its models (the lease's fence); checked before each batch
        self.fence: Callable[[], bool] = lambda: True
        self._task: asyncio.Task[None] | None = None
        self._halt = False
        self.bootstrap = bootstrap
        self.client_kwargs = dict(client_kwargs or {})  # TLS / SASL (streams.security.kafka_client_kwargs)
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

    def make_consumer(self) -> AIOKafkaConsumer:
        """The (unstarted) labels consumer: no group, TLS / SASL from ``client_kwargs`` (in an event loop)."""
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_max,
            fetch_max_wait_ms=self.batch_timeout_ms,
            **self.client_kwargs,
        )

    async def on_start(self) -> None:
        """Start learning at once unless a lease decides when (``autostart=False``)."""
        if self.autostart:
            await self.start_learning()

    @property
    def learning(self) -> bool:
        """Whether the label consumer runs (this worker learns its models)."""
        return self._task is not None and not self._task.done()

    async def start_learning(self) -> None:
        """Start the consumer, assign every partition from the learners' offsets, start the consume loop."""
        if self.learning:
            return
        self.consumer = self.make_consumer()
        try:
            await self.consumer.start()
            await self._assign()
        except BaseException:
            await self.consumer.stop()
            self.consumer = None
            raise
        self._halt = False
        self._task = asyncio.create_task(self._consume(), name=f"learn:{self.topic}")
        self._task.add_done_callback(_log_failure)

    async def stop_learning(self, final_snapshot: bool = False, timeout: float = 3.0) -> None:
        """Stop the consume loop after its batch (cancelled after ``timeout`` s), then the consumer.

        With ``final_snapshot`` (a clean shutdown, the lease still held), the models that learned since
        their last snapshot are snapshotted, so the next holder starts where this one stopped.
        """
        task, self._task = self._task, None
        self._halt = True
        if task is not None:
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                logger.warning("the label consume loop did not stop within %.1fs; cancelled", timeout)
        if final_snapshot and task is not None:
            for slot in self.joiner.slots:
                if slot.learner.examples_learned > slot.last_snapshot_examples:
                    await self.snapshot(slot)
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
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
        return [TopicPartition(self.topic, p) for p in sorted(parts)]

    async def _assign(self) -> None:
        assert self.consumer is not None
        tps = await self._partitions()
        self.consumer.assign(tps)
        await self._position(tps, force=False, moved=set(tps))

    async def _position(
        self, tps: list[TopicPartition], force: bool, moved: set[TopicPartition]
    ) -> list[int]:
        """Seek to the snapshots' offsets; a log that ends below them (or all, ``force``) from its beginning.

        A broker that lost its topics (the embedded one keeps them in memory) comes back with logs
        shorter than the offsets learned: those partitions are learned from the beginning of the new
        log and the learners' offsets for them restart there. Returns the partitions rewound.
        """
        assert self.consumer is not None
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        low = [
            tp
            for tp in tps
            if any(
                s.learner.offsets.get(_tp_key(tp.topic, tp.partition), 0) > ends[tp]
                for s in self.joiner.slots
            )
        ]
        if low:  # Tansu reports low ends (streams.offsets): ask a fetch before calling a log shorter
            ends.update(await broker_ends(self.bootstrap, low, self.client_kwargs))
        rewound = []
        for tp in tps:
            key = _tp_key(tp.topic, tp.partition)
            offsets = [s.learner.offsets.get(key, 0) for s in self.joiner.slots]
            if force or any(o > ends[tp] for o in offsets):
                for s in self.joiner.slots:
                    s.learner.offsets[key] = begins[tp]
                self.consumer.seek(tp, begins[tp])
                rewound.append(tp.partition)
            elif tp in moved:
                start = min(offsets) if offsets else 0
                self.consumer.seek(tp, max(start, begins[tp]))
        if rewound:
            logger.warning(
                "labels %s: partitions %s restart from the beginning of a new log", self.topic, rewound
            )
        logger.info(
            "learner reads %s from %s",
            self.topic,
            {
                tp.partition: min(
                    (s.learner.offsets.get(_tp_key(tp.topic, tp.partition), 0) for s in self.joiner.slots),
                    default=0,
                )
                for tp in tps
            },
        )
        return rewound

    async def check_log(self, force: bool = False) -> list[int]:
        """After the broker came back: re-read the partitions and rewind those whose log went backwards.

        ``force`` rewinds every partition (the worker found a new broker epoch). Label ids stay deduped
        by the learners, so a label read again is not learned twice. Returns the partitions rewound
        (none while this worker does not learn: :meth:`start_learning` positions from the offsets).
        """
        if self.consumer is None:
            return []
        tps = await self._partitions()
        moved = set(tps) - set(self.consumer.assignment())
        if moved:
            self.consumer.assign(tps)
            moved = set(tps)
        return await self._position(tps, force=force, moved=moved)

    async def on_stop(self) -> None:
        """Stop learning; snapshot what was learned since the last snapshot while the lease is held."""
        await self.stop_learning(final_snapshot=self.fence())

    async def _consume(self) -> None:
        assert self.consumer is not None
        backoff = 0.1
        while not self.should_stop and not self._halt:
            if self.joiner.pending_count() >= self.max_pending:
                # the scorer is far behind: stop reading labels, keep retrying the waiting ones
                batches = {}
                await asyncio.sleep(self.batch_timeout_ms / 1000)
            else:
                batches = await self.consumer.getmany(
                    timeout_ms=self.batch_timeout_ms, max_records=self.batch_max
                )
            records = [r for rs in batches.values() for r in rs]
            if self._halt or not self.fence():
                break  # the lease may be gone: these records are left to the next holder
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
        if not self.fence():
            logger.warning("snapshot of %s skipped: this worker no longer holds the learner lease", slot.name)
            return None
        learner = slot.learner
        parent = learner.version
        version = self.registry.next_snapshot_version(slot.name, slot.base_version)
        learner.version = version
        meta = snapshot_metadata(slot, parent)
        frozen = PickledModel(learner)
        slot.last_snapshot_examples = learner.examples_learned
        slot.last_snapshot_at = time.monotonic()
        if not await register_snapshot(self.registry, frozen, slot.name, version, meta, learner, parent):
            return None
        slot.snapshots.append(version)
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
