"""Batching does not change results: the worker's components give the same outcome in batches or one by one.

The same simulated stream goes through :class:`~streams.order_processor.OrderProcessor` and
:class:`~streams.learner_service.LabelJoiner` (wired by :func:`streams.runtime.wire_pipelines`, as in the
worker and in ``hanzo-ml train``) twice: once in batches of 500 records, once one record per batch. The
stream is cut into event-time segments; within a segment the orders and customer events are processed,
then the segment's labels are learned, so in both runs each order is scored by a model that learned the same
labels, and only the batch size differs. Afterwards every customer's features, every order's score and
stored vector, and the model's parameters (the scaler's statistics and the LogisticRegression weights and
intercept) must be identical, on the Redis backend and on the in-memory one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from river import compose

from hanzo.ml.features import FeatureStore, InMemoryOnlineStore, RedisOnlineStore
from hanzo.ml.learners.derived_labels import InMemoryDeadlineQueue, RedisDeadlineQueue
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import InMemoryVectorStore, RedisVectorStore, VectorStore
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, to_json
from hanzo.ml.streams.learner_service import LabelJoiner
from hanzo.ml.streams.order_processor import OrderProcessor
from hanzo.ml.streams.runtime import new_learner, wire_pipelines
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration

TOPICS = {"order": "orders", "customer_event": "events", "label": "labels"}
MODEL = "fraud_detection"
SEGMENT_MS = 12 * 3_600_000
Event = Order | CustomerEvent | Label


@pytest.fixture(scope="module")
def events() -> list[Event]:
    config = SimulatorConfig(
        seed=31,
        orders=1200,
        customers=150,
        orders_per_day=400,
        browse_events_per_order=0.5,
        chargeback_delay_days=(0.1, 0.4),
        settle_delay_days=(0.1, 0.4),
        fraud_rate=0.06,
    )
    return sorted(Simulator(config).events(), key=lambda e: e.event_time)


class _Records:
    """Consumer records of events: one partition per topic, offsets from 0 (as ``hanzo-ml train`` makes)."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def __call__(self, event: Event) -> ConsumerRecord:
        topic = TOPICS[event.kind]
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        key = (event.subject_id if isinstance(event, Label) else event.customer_id).encode()
        value = to_json(event)
        return ConsumerRecord(
            topic, 0, offset, event.event_time, 0, key, value, None, len(key), len(value), []
        )


def _chunks(items: Sequence[ConsumerRecord], size: int) -> Iterator[list[ConsumerRecord]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _segments(events: Sequence[Event]) -> list[list[Event]]:
    out: dict[int, list[Event]] = {}
    for e in events:
        out.setdefault(e.event_time // SEGMENT_MS, []).append(e)
    return [out[k] for k in sorted(out)]


def _components(
    backend: str, request: pytest.FixtureRequest, prefix: str
) -> tuple[OrderProcessor, LabelJoiner]:
    spec = PipelineSpec.shipped(MODEL)
    vectors: VectorStore
    if backend == "redis":
        client = request.getfixturevalue("redis_client")
        store = FeatureStore(backend=RedisOnlineStore(client, key_prefix=prefix))
        vectors = RedisVectorStore(client, key_prefix=prefix)
        processor, joiner = wire_pipelines(
            [spec],
            {spec.name: new_learner(spec)},
            store,
            vectors,
            lambda name: RedisDeadlineQueue(client, name, key_prefix=prefix),
            kinds={"orders": "order", "events": "customer_event"},
        )
    else:
        processor, joiner = wire_pipelines(
            [spec],
            {spec.name: new_learner(spec)},
            FeatureStore(backend=InMemoryOnlineStore()),
            InMemoryVectorStore(),
            lambda _name: InMemoryDeadlineQueue(),
            kinds={"orders": "order", "events": "customer_event"},
        )
    return processor, joiner


def _run(
    events: Sequence[Event],
    processor: OrderProcessor,
    joiner: LabelJoiner,
    batch: int,
    chunks: int | None = None,
) -> dict[str, int]:
    """Feed each segment: its stream records, then its labels, in batches of ``batch`` records.

    With ``chunks``, the stream batches go through ``process_async`` (as in the worker) in chunks of that
    many records, one chunk's features applied while the chunk before is scored.
    """
    record = _Records()
    counts = {"stream_batches": 0, "label_batches": 0, "dead_letters": 0}
    for segment in _segments(events):
        stream = [record(e) for e in segment if not isinstance(e, Label)]
        labels = [record(e) for e in segment if isinstance(e, Label)]
        for part in _chunks(stream, batch):
            if chunks is None:
                out = processor.process(part)
            else:
                processor.chunk_records = chunks
                out = asyncio.run(processor.process_async(part))
            counts["stream_batches"] += 1
            counts["dead_letters"] += len(out.dead_letters)
        for part in _chunks(labels, batch):
            lab = joiner.process(part, now=part[-1].timestamp / 1000)
            counts["label_batches"] += 1
            counts["dead_letters"] += len(lab.dead_letters)
    return counts


def _parameters(model: Any, path: str = "model") -> dict[str, Any]:
    """The learned state of a River pipeline: weights, intercepts and the scalers' running statistics."""
    out: dict[str, Any] = {}
    if isinstance(model, compose.Pipeline):
        for name, step in model.steps.items():
            out |= _parameters(step, f"{path}.{name}")
        return out
    if isinstance(model, compose.TransformerUnion):
        for name, t in model.transformers.items():
            out |= _parameters(t, f"{path}.{name}")
        return out
    for attr in ("weights", "intercept", "counts", "means", "vars"):
        if hasattr(model, attr):
            value = getattr(model, attr)
            out[f"{path}.{attr}"] = dict(value) if hasattr(value, "items") else value
    return out


def _outcome(
    events: Sequence[Event], processor: OrderProcessor, joiner: LabelJoiner
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    customers = sorted({e.customer_id for e in events if not isinstance(e, Label)})
    names = [
        f.name for f in processor.store.list_features() if f.entity == "customer" and f.kind == "aggregate"
    ]
    rows = processor.store.get_features_batch(entity="customer", ids=customers, features=names)
    features = dict(zip(customers, rows, strict=True))
    order_ids = [e.order_id for e in events if isinstance(e, Order)]
    vectors = processor.vectors
    scores = {}
    for oid in order_ids:
        record = vectors.get_score(MODEL, oid)
        assert record is not None, f"order {oid} has no score"
        scores[oid] = record["score"]
    stored = dict(zip(order_ids, vectors.read(MODEL, order_ids), strict=True))
    learner = joiner.slots[0].learner
    state = {"examples": learner.examples_learned, "parameters": _parameters(learner.model)}
    return features, scores, stored, state


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_batches_of_500_equal_one_event_per_batch(
    backend: str, events: list[Event], request: pytest.FixtureRequest, key_prefix: str
) -> None:
    batched = _components(backend, request, f"{key_prefix}b500:")
    single = _components(backend, request, f"{key_prefix}b1:")
    counts_batched = _run(events, *batched, batch=500)
    counts_single = _run(events, *single, batch=1)
    assert counts_batched["dead_letters"] == counts_single["dead_letters"] == 0
    assert counts_single["stream_batches"] > 20 * counts_batched["stream_batches"]

    features_b, scores_b, stored_b, state_b = _outcome(events, *batched)
    features_s, scores_s, stored_s, state_s = _outcome(events, *single)

    n_labels = sum(isinstance(e, Label) for e in events)
    # the run is not trivial: every label was learned, the model moved, the scores differ between orders
    assert state_b["examples"] == n_labels == 1200
    weights = next(v for k, v in state_b["parameters"].items() if k.endswith(".weights"))
    assert len(weights) >= 10 and any(w != 0 for w in weights.values())
    assert len({round(s, 6) for s in scores_b.values()}) > 100
    assert all(v is not None for v in stored_b.values())
    assert sum(row["orders_lifetime"] or 0 for row in features_b.values()) == 1200

    assert features_b == features_s
    assert scores_b == scores_s
    assert stored_b == stored_s
    assert state_b == state_s


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_process_async_in_overlapped_chunks_equals_process(
    backend: str, events: list[Event], request: pytest.FixtureRequest, key_prefix: str
) -> None:
    """The worker's path (chunks of a batch overlapped) leaves what one call per batch leaves."""
    whole = _components(backend, request, f"{key_prefix}whole:")
    chunked = _components(backend, request, f"{key_prefix}chunked:")
    _run(events, *whole, batch=500)
    counts = _run(events, *chunked, batch=500, chunks=37)
    assert counts["dead_letters"] == 0
    assert _outcome(events, *whole) == _outcome(events, *chunked)
