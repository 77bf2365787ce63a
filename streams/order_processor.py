"""The hot path for orders and customer events: validate, update features, score, write, per batch.

One call handles a whole batch: one feature-store call per entity kind the definitions have (``customer``
first, whose values the models score; then ``product`` and any other: each order updates every product it
holds; a Lua script per entity, pipelined), one model call per order and pipeline, one
:class:`~learners.vectors.VectorStore` write of the scores and the scored vectors (which also deletes the
vectors past their label horizon, once a minute of event time), and for pipelines with derived labels one
deadline-queue call. :meth:`OrderProcessor.process_async` does this per chunk of the batch, the features of
one chunk in a thread while the loop scores the chunk before; the batch consumer commits only after the
whole batch returns. ``hanzo-ml train`` runs this same class over an in-memory feature store and vector store.

Two kinds of pipelines are scored on every order:

- order-level (``data.entity: order``, e.g. fraud): subject = the order id, for both the score and the
  stored vector;
- customer-level (``data.entity: customer``, e.g. churn): each order is a reference point; the score is
  kept per customer (subject = the customer id) and the vector per reference (subject
  ``"{customer_id}:{order_time_ms}"``, see :mod:`learners.derived_labels`), where its label will find it.

A re-delivered order (feature status ``duplicate`` or ``fenced``) is scored again, but its vector is written
only where none is stored, so the vector a label joins is always the one scored first.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import ConsumerRecord

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.features import ApplyResult, EventRecord, FeatureStore, raw_features
from hanzo.ml.learners.derived_labels import DAY_MS, DerivedLabeler, reference_subject
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.vectors import RedisVectorStore, ScoreWrite, VectorStore, VectorWrite
from hanzo.ml.schemas.dead_letters import DeadLetter, classify
from hanzo.ml.schemas.events import Label, Order, parse_event

logger = logging.getLogger(__name__)

_FRESH = frozenset({"applied", "late"})
_EXPIRE_EVERY_MS = 60_000


@dataclass
class Scorer:
    """A model scoring every order: its name, the features it reads and the learner that owns it.

    ``level`` is ``order`` (one example per order) or ``customer`` (each order is a reference point of its
    customer). ``labeler`` derives the labels of a pipeline with ``labels.kind: derived``. Stored vectors
    still without a label ``vector_ttl_s + expiry_grace_ms`` after their event time (in event time) are
    deleted and counted in ``expired``.
    """

    name: str
    features: tuple[str, ...]
    learner: OnlineLearner
    score_ttl_s: int = 7 * 86_400
    vector_ttl_s: int = 120 * 86_400
    level: Literal["order", "customer"] = "order"
    labeler: DerivedLabeler | None = None
    expiry_grace_ms: int = DAY_MS
    expired: int = 0


@dataclass
class BatchOutcome:
    """What one batch did (for metrics and tests).

    ``labels`` are the derived labels the batch resolved; the caller sends them to the label join (the
    worker publishes them to the labels topic, ``hanzo-ml train`` hands them to its joiner).
    """

    dead_letters: list[DeadLetter] = field(default_factory=list)
    orders: int = 0
    customer_events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    scoring_seconds: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Per model: the scoring time per order (amortised over the batch) and the orders scored."""
    labels: list[Label] = field(default_factory=list)
    expired: dict[str, int] = field(default_factory=dict)
    watermark_ms: int = 0
    predictions: list[tuple[str, dict[str, Any], float, float]] = field(default_factory=list)
    """(model, x, score, seconds) per scored order, for the drift monitor."""
    scores: list[ScoreWrite] = field(default_factory=list)
    """The score records written to Redis (the worker also publishes them to the scores topic)."""


class OrderProcessor:
    """Turn a batch of raw Kafka records (orders and customer events) into features, scores and dead letters.

    Parameters
    ----------
    store
        The feature store (its backend holds the Redis client or the in-memory state).
    redis_client
        A sync redis-py client for score and vector writes (unused when ``vectors`` is given).
    scorers
        The models that score each order.
    kinds
        Topic name -> event kind (``order`` or ``customer_event``).
    key_prefix
        Prefix of every Redis key written.
    max_message_bytes
        Larger messages go to the dead-letter topic unparsed.
    vectors
        Where scores and vectors go; default :class:`~learners.vectors.RedisVectorStore` over
        ``redis_client``.
    chunk_records
        :meth:`process_async` applies a batch's features in chunks of this many records, each in a thread
        while the loop scores the chunk before it.

    Examples
    --------
    >>> from hanzo.ml.features import InMemoryOnlineStore
    >>> from hanzo.ml.learners.vectors import InMemoryVectorStore
    >>> from river import linear_model
    >>> learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    >>> processor = OrderProcessor(FeatureStore(backend=InMemoryOnlineStore()), None,
    ...                            [Scorer("fraud", ("order_total",), learner)], kinds={"orders": "order"},
    ...                            vectors=InMemoryVectorStore())
    >>> processor.process([]).orders
    0
    """

    def __init__(
        self,
        store: FeatureStore,
        redis_client: Any,
        scorers: Sequence[Scorer],
        kinds: Mapping[str, str],
        key_prefix: str = "",
        max_message_bytes: int = 256 * 1024,
        vectors: VectorStore | None = None,
        chunk_records: int = 500,
    ) -> None:
        self.store = store
        self.redis = redis_client
        self.scorers = list(scorers)
        self.kinds = dict(kinds)
        self.key_prefix = key_prefix
        self.max_message_bytes = max_message_bytes
        self.vectors = vectors if vectors is not None else RedisVectorStore(redis_client, key_prefix)
        self.chunk_records = chunk_records
        self.watermark_ms = 0
        self._expired_at_ms = 0
        self._expire_before: dict[str, int] = {}  # model -> cutoff, deleted by the batch's first write
        # newest order time per orders partition: the watermark is their minimum, so a topic or partition
        # running ahead (customer events, a faster partition) never fires deadlines or gives up labels early
        self._partition_ms: dict[tuple[str | None, int], int] = {}
        #: the orders partitions this processor owns (the worker sets it from the consumer's assignment); a
        #: partition not seen yet holds the watermark back. None (offline replay): the partitions seen.
        self.expected_partitions: Callable[[], set[tuple[str | None, int]]] | None = None

    def reset_watermark(self) -> None:
        """Forget the event-time progress (a replay from the oldest events starts it again)."""
        self.watermark_ms = 0
        self._partition_ms.clear()
        self._expired_at_ms = 0
        self._expire_before = {}

    def parse(self, records: Sequence[ConsumerRecord], out: BatchOutcome) -> list[EventRecord]:
        """Validate records; the unusable ones become dead letters in ``out``."""
        parsed: list[EventRecord] = []
        for r in records:
            kind = self.kinds.get(r.topic)
            value: bytes | None = r.value
            try:
                if kind is None:
                    msg = f"no handler for topic {r.topic!r}"
                    raise ValidationError(msg)
                if value is None:
                    msg = "malformed JSON: empty message"
                    raise ValidationError(msg)
                if len(value) > self.max_message_bytes:
                    msg = f"oversized: {len(value)} bytes > {self.max_message_bytes}"
                    raise ValidationError(msg)
                event = parse_event(value, kind=kind)
                if isinstance(event, Label):
                    msg = f"a label on topic {r.topic!r}, which carries {kind} events"
                    raise ValidationError(msg)
            except ValidationError as exc:
                text = str(exc)
                out.dead_letters.append(
                    DeadLetter(classify(text), text, r.topic, r.partition, r.offset, r.key, value)
                )
                continue
            parsed.append(EventRecord(event, r.topic, r.partition, r.offset))
        # A batch holds whole runs of several partitions and topics. Interleave them by event time so one
        # topic's run does not make another's earlier events look late; each partition keeps its offset
        # order (heapq.merge only ever takes the head of each run), as the offset fences require.
        runs: dict[tuple[str | None, int], list[EventRecord]] = {}
        for rec in parsed:
            runs.setdefault((rec.topic, rec.partition), []).append(rec)
        if len(runs) <= 1:
            return parsed
        return list(heapq.merge(*runs.values(), key=lambda rec: rec.event.event_time))

    def process(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """Handle one batch; returns what it did. Raises only when a service fails (the batch is retried)."""
        out, parsed = self._begin(records)
        if not parsed:
            return out
        references = self._references()
        self._score(out, parsed, self.apply_features(parsed), references, first=True)
        return self._close(out, references)

    async def process_async(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """:meth:`process`, with the feature store's round trips in a thread, overlapped with the scoring.

        The batch is cut into chunks of ``chunk_records`` records (in batch order, so each partition keeps
        its offset order). While Redis applies one chunk's features in a thread, the event loop scores the
        chunk before it and writes its scores and vectors, so the worker's Python and Redis use both cores
        instead of taking turns. Scoring stays on the loop, where the learners change. The batch succeeds
        or fails as a whole: a failure waits for the chunk in flight, then raises (the batch is retried;
        re-applied features are fenced or duplicates, as after a crash).
        """
        out, parsed = self._begin(records)
        if not parsed:
            return out
        size = max(1, self.chunk_records)
        chunks = [parsed[i : i + size] for i in range(0, len(parsed), size)]
        references = self._references()
        pending = asyncio.ensure_future(asyncio.to_thread(self.apply_features, chunks[0]))
        try:
            for i, chunk in enumerate(chunks):
                results = await pending
                if i + 1 < len(chunks):
                    pending = asyncio.ensure_future(asyncio.to_thread(self.apply_features, chunks[i + 1]))
                self._score(out, chunk, results, references, first=i == 0)
        finally:
            if not pending.done():  # a failure while the next chunk's features are under way
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: the batch's failure is the one raised
        return self._close(out, references)

    def apply_features(self, parsed: Sequence[EventRecord]) -> list[ApplyResult]:
        """Update every entity's aggregates with the batch; returns the ``customer`` results (scored).

        The other entities (``product``: each order updates every product it holds, a page view its
        product) share the events' offset fences and event-id marks, so a re-delivered batch changes
        nothing, whichever worker owned the partition before.
        """
        results = self.store.apply_batch("customer", parsed)
        for entity in self.store.entities:
            if entity != "customer":
                self.store.apply_batch(entity, parsed)
        return results

    def _begin(self, records: Sequence[ConsumerRecord]) -> tuple[BatchOutcome, list[EventRecord]]:
        out = BatchOutcome()
        parsed = self.parse(records, out)
        if not parsed:
            out.watermark_ms = self.watermark_ms
            return out, parsed
        # by the watermark before this batch (earlier batches' labels are out); the batch's first write
        # deletes them, before it stores anything
        due = self._due_expiry()
        if due:
            self._expire_before = due
        return out, parsed

    def scored_through(self) -> dict[str, int]:
        """Event time each owned orders partition is scored through (``"topic/partition"`` -> ms).

        The worker publishes it every 2 s (:func:`streams.watermark.publish_scored_through`) for a
        learner in another process (``role: learn``), which joins labels against the whole group's progress.
        """
        owned = self._owned()
        return {f"{t}/{p}": ms for (t, p), ms in self._partition_ms.items() if (t, p) in owned}

    def _owned(self) -> set[tuple[str | None, int]]:
        if self.expected_partitions is not None:
            return self.expected_partitions()
        return set(self._partition_ms)

    def _references(self) -> dict[str, list[tuple[str, int]]]:
        """Per pipeline with derived labels, the reference points the batch scores (filled by ``_score``)."""
        return {s.name: [] for s in self.scorers if s.labeler}

    def _score(
        self,
        out: BatchOutcome,
        parsed: Sequence[EventRecord],
        results: Sequence[ApplyResult],
        references: dict[str, list[tuple[str, int]]],
        first: bool,
    ) -> None:
        """Score the orders of one chunk and write their scores and vectors (one call)."""
        now_ms = int(time.time() * 1000)
        statuses = out.statuses
        partition_ms = self._partition_ms
        # (order, fresh, features) of each order, in batch order
        orders: list[tuple[Order, bool, dict[str, Any]]] = []
        for rec, res in zip(parsed, results, strict=True):
            statuses[res.status] = statuses.get(res.status, 0) + 1
            event = rec.event
            if not isinstance(event, Order):
                out.customer_events += 1
                continue
            key = (rec.topic, rec.partition)
            if event.event_time > partition_ms.get(key, 0):
                partition_ms[key] = event.event_time
            orders.append((event, res.status in _FRESH, {**res.features, **raw_features(event)}))
        out.orders += len(orders)
        scores: list[ScoreWrite] = []
        vectors: list[VectorWrite] = []
        for scorer in self.scorers if orders else ():
            # a window with no value (None) is imputed as 0 so every model sees every feature
            names = scorer.features
            xs = [
                {name: 0.0 if (v := available.get(name)) is None else v for name in names}
                for _, _, available in orders
            ]
            t0 = time.perf_counter()
            batch_scores = scorer.learner.score_many(xs)
            elapsed = (time.perf_counter() - t0) / len(xs)  # per order, amortised over the chunk
            model, version, examples = scorer.name, scorer.learner.version, scorer.learner.examples_learned
            seconds, n = out.scoring_seconds.get(model, (0.0, 0))
            out.scoring_seconds[model] = ((seconds * n + elapsed * len(xs)) / (n + len(xs)), n + len(xs))
            customer_level = scorer.level == "customer"
            refs = references.get(model)
            ttl_s, vector_ttl_s = scorer.score_ttl_s, scorer.vector_ttl_s
            for (event, fresh, _), x, score in zip(orders, xs, batch_scores, strict=True):
                out.predictions.append((model, x, score, elapsed))
                if customer_level:
                    score_subject = event.customer_id
                    subject = reference_subject(event.customer_id, event.event_time)
                else:
                    score_subject = subject = event.order_id
                record = {
                    "score": score,
                    "model": model,
                    "version": version,
                    "examples": examples,
                    "scored_at_ms": now_ms,
                    "event_time_ms": event.event_time,
                }
                scores.append(ScoreWrite(model, score_subject, record, ttl_s))
                vectors.append(
                    VectorWrite(model, subject, x, score, event.event_time, vector_ttl_s, fresh=fresh)
                )
                if refs is not None:
                    refs.append((event.customer_id, event.event_time))
            out.scored += len(xs)
        if scores or vectors or first:
            self._write(out, scores, vectors)
        out.scores += scores

    def _write(self, out: BatchOutcome, scores: list[ScoreWrite], vectors: list[VectorWrite]) -> None:
        """Write scores and vectors, and delete the vectors due to expire (one call; those once a batch)."""
        expired = self.vectors.write(scores, vectors, expire_before=self._expire_before)
        self._expire_before = {}  # done (a failed write keeps them for the batch's retry)
        for scorer in self.scorers:
            n = expired.get(scorer.name, 0)
            if n:
                scorer.expired += n
                out.expired[scorer.name] = out.expired.get(scorer.name, 0) + n
                logger.debug("%s: %d stored vectors reached the label horizon unlabelled", scorer.name, n)

    def _close(self, out: BatchOutcome, references: dict[str, list[tuple[str, int]]]) -> BatchOutcome:
        """Advance the watermark over the batch and derive the labels it resolves."""
        owned = self._owned()
        low = min((self._partition_ms.get(tp, 0) for tp in owned), default=0)
        watermark = max(self.watermark_ms, low)
        self.watermark_ms = out.watermark_ms = watermark
        for scorer in self.scorers:
            if scorer.labeler is not None:
                out.labels.extend(scorer.labeler.observe(references[scorer.name], watermark))
        return out

    def _due_expiry(self) -> dict[str, int]:
        """Per model, the cutoff of unlabelled vectors past their horizon (once a minute of event time)."""
        if self.watermark_ms - self._expired_at_ms < _EXPIRE_EVERY_MS:
            return {}
        self._expired_at_ms = self.watermark_ms
        return {
            scorer.name: self.watermark_ms - scorer.vector_ttl_s * 1000 - scorer.expiry_grace_ms
            for scorer in self.scorers
        }
