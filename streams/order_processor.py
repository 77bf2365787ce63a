"""The hot path for orders and customer events: validate, update features, score, write, per batch.

One call handles a whole batch: one feature-store round trip (a Lua script per entity, pipelined), one
model call per order, and one Redis pipeline that writes the scores and the scored vectors. Nothing
here awaits: the batch consumer calls it and commits only after it returns.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord

from config.errors import ValidationError
from features import EventRecord, FeatureStore, raw_features
from learners.keys import score_key, vector_key
from learners.online import OnlineLearner
from streams.dead_letters import DeadLetter, classify
from streams.schemas import CustomerEvent, Label, Order, parse_event

logger = logging.getLogger(__name__)


@dataclass
class Scorer:
    """A model scoring every order: its name, the features it reads and the learner that owns it."""

    name: str
    features: tuple[str, ...]
    learner: OnlineLearner
    score_ttl_s: int = 7 * 86_400
    vector_ttl_s: int = 120 * 86_400


@dataclass
class BatchOutcome:
    """What one batch did (for metrics and tests)."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    orders: int = 0
    customer_events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    scoring_seconds: list[float] = field(default_factory=list)


def _or_zero(value: Any) -> Any:
    return 0.0 if value is None else value


class OrderProcessor:
    """Turn a batch of raw Kafka records (orders and customer events) into features, scores and dead letters.

    Parameters
    ----------
    store
        The feature store (its backend holds the Redis client or the in-memory state).
    redis_client
        A sync redis-py client for score and vector writes.
    scorers
        The models that score each order.
    kinds
        Topic name -> event kind (``order`` or ``customer_event``).
    key_prefix
        Prefix of every Redis key written.
    max_message_bytes
        Larger messages go to the dead-letter topic unparsed.
    """

    def __init__(
        self,
        store: FeatureStore,
        redis_client: Any,
        scorers: Sequence[Scorer],
        kinds: Mapping[str, str],
        key_prefix: str = "",
        max_message_bytes: int = 256 * 1024,
    ) -> None:
        self.store = store
        self.redis = redis_client
        self.scorers = list(scorers)
        self.kinds = dict(kinds)
        self.key_prefix = key_prefix
        self.max_message_bytes = max_message_bytes

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
        return parsed

    def process(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """Handle one batch; returns what it did. Raises only when a service fails (the batch is retried)."""
        out = BatchOutcome()
        parsed = self.parse(records, out)
        if not parsed:
            return out
        results = self.store.apply_batch("customer", parsed)
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for rec, res in zip(parsed, results, strict=True):
            out.statuses[res.status] = out.statuses.get(res.status, 0) + 1
            event = rec.event
            if isinstance(event, CustomerEvent):
                out.customer_events += 1
                continue
            assert isinstance(event, Order)
            out.orders += 1
            available = {**res.features, **raw_features(event)}
            for scorer in self.scorers:
                # a window with no value (None) is imputed as 0 so every model sees every feature
                x = {name: _or_zero(available.get(name)) for name in scorer.features}
                t0 = time.perf_counter()
                score = scorer.learner.score(x)
                out.scoring_seconds.append(time.perf_counter() - t0)
                record = {
                    "score": score,
                    "model": scorer.name,
                    "version": scorer.learner.version,
                    "examples": scorer.learner.examples_learned,
                    "scored_at_ms": now_ms,
                    "event_time_ms": event.event_time,
                }
                pipe.set(
                    score_key(scorer.name, event.order_id, self.key_prefix),
                    json.dumps(record),
                    ex=scorer.score_ttl_s,
                )
                vector = {"x": x, "score": score, "event_time_ms": event.event_time}
                pipe.set(
                    vector_key(scorer.name, event.order_id, self.key_prefix),
                    json.dumps(vector),
                    ex=scorer.vector_ttl_s,
                )
                out.scored += 1
        if out.scored:
            pipe.execute()
        return out
