"""Bootstrap a pipeline's model from history: ``hanzo-ml train spec.yaml --data history.jsonl``.

History is replayed in event-time order through the worker's own components: the
:class:`~streams.order_processor.OrderProcessor` (features, scoring, stored vectors, derived labels) and the
:class:`~streams.learner_service.LabelJoiner` (label join, predict-then-learn), wired by
:func:`streams.runtime.wire_pipelines` over an in-memory feature store
(:class:`features.InMemoryOnlineStore`), an in-memory vector store and an in-memory deadline queue.
:func:`replay` feeds them as the worker's consumers would: consecutive orders and customer events in batches
to the processor, consecutive labels in batches to the joiner, interleaved by event time; the derived
labels a processor batch resolves go to the joiner right after that batch.

Evaluation. Labels with an event time in the first ``training.split`` of the history's event-time span
(from its first to its last order: account sign-ups years back do not stretch it) are learned
predict-then-learn (the progressive metrics, as River's ``progressive_val_score``). With
``training.validation: time_based`` the labels of the rest are the holdout: the model only predicts them
(no learning) and a separate metric set scores those predictions; the registered model has therefore learned
the first part only, and goes on learning from live labels when ``hanzo-ml worker`` takes it over. With
``validation: progressive`` every label is learned and the progressive metrics are the evaluation.
Thresholds (``evaluation.threshold``) are checked on the holdout's cumulative values (the progressive ones
when there is no holdout, or it received no label).

Model families (demand forecasting, recommendations, price optimization, search ranking:
:attr:`config.pipeline.PipelineSpec.family`) replay the same history through their
:class:`~learners.families.FamilyLearner` instead (orders and customer events in batches; labels are not
theirs); they are evaluated progressively beside their baseline, and with a Redis client their outputs
(``forecast:``, ``reco:``, ``price:``, ``rank:``) are written at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features import FeatureStore, InMemoryOnlineStore
from hanzo.ml.learners.derived_labels import InMemoryDeadlineQueue
from hanzo.ml.learners.families import FamilyLearner, build_family
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import InMemoryVectorStore
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, to_json
from hanzo.ml.streams.learner_service import LabelJoiner, snapshot_metadata
from hanzo.ml.streams.order_processor import OrderProcessor
from hanzo.ml.streams.runtime import new_learner, wire_pipelines
from hanzo.ml.streams.simulation import read_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "HISTORY_TOPICS",
    "ReplayStats",
    "TrainResult",
    "load_history",
    "offline_components",
    "family_metadata",
    "replay",
    "train",
    "train_family",
]

Event = Order | CustomerEvent | Label

#: The topic names replayed history is tagged with (event kind -> topic).
HISTORY_TOPICS = {"order": "orders", "customer_event": "events", "label": "labels"}


def load_history(path: str | Path) -> list[Event]:
    """Read a history file (:func:`streams.simulation.read_jsonl`) and sort it by event time (stably).

    Raises
    ------
    ConfigError
        When the file does not exist or holds no event.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"history file {str(p)!r} does not exist; write one with `hanzo-ml simulate --out FILE`"
        raise ConfigError(msg)
    events = sorted(read_jsonl(p), key=lambda e: e.event_time)
    if not events:
        msg = f"history file {str(p)!r} holds no event; nothing to train on"
        raise ConfigError(msg)
    return events


@dataclass
class ReplayStats:
    """What :func:`replay` fed: events, batches, labels (explicit and derived), dead letters, expirations."""

    events: int = 0
    stream_batches: int = 0
    label_batches: int = 0
    labels: int = 0
    derived_labels: int = 0
    dead_letters: int = 0
    expired: dict[str, int] = field(default_factory=dict)


class _Feeder:
    """Turns events into consumer records (one partition per topic, offsets from 0) and feeds them."""

    def __init__(
        self,
        processor: OrderProcessor,
        joiner: LabelJoiner,
        topics: dict[str, str],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.processor = processor
        self.joiner = joiner
        self.topics = topics
        self.progress = progress
        self.offsets: dict[str, int] = {}
        self.stats = ReplayStats()

    def record(self, event: Event) -> ConsumerRecord:
        topic = self.topics[event.kind]
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        key = (event.subject_id if isinstance(event, Label) else event.customer_id).encode()
        value = to_json(event)
        return ConsumerRecord(
            topic, 0, offset, event.event_time, 0, key, value, None, len(key), len(value), []
        )

    def chunk(self, events: Sequence[Event]) -> None:
        stream = [self.record(e) for e in events if not isinstance(e, Label)]
        if stream:
            self.stream(stream)
        labels = [e for e in events if isinstance(e, Label)]
        if labels:
            self.labels([self.record(e) for e in labels], max(e.event_time for e in labels), count=True)

    def stream(self, batch: list[ConsumerRecord]) -> None:
        out = self.processor.process(batch)
        self.stats.stream_batches += 1
        self.stats.dead_letters += len(out.dead_letters)
        for name, n in out.expired.items():
            self.stats.expired[name] = self.stats.expired.get(name, 0) + n
        if out.labels:
            self.stats.derived_labels += len(out.labels)
            self.labels([self.record(lab) for lab in out.labels], out.watermark_ms)
        if self.progress is not None:
            self.progress(len(batch))

    def labels(self, batch: list[ConsumerRecord], now_ms: int, count: bool = False) -> None:
        # the join's wait for a missing vector runs on event time here (the worker's on the monotonic clock)
        out = self.joiner.process(batch, now=now_ms / 1000)
        self.stats.label_batches += 1
        self.stats.labels += len(batch)
        self.stats.dead_letters += len(out.dead_letters)
        if count and self.progress is not None:
            self.progress(len(batch))


def replay(
    events: Iterable[Event],
    processor: OrderProcessor,
    joiner: LabelJoiner,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    topics: dict[str, str] | None = None,
) -> ReplayStats:
    """Feed ``events`` (in event-time order) to ``processor`` and ``joiner`` in batches, as the worker would.

    The events are cut into chunks of ``batch_size`` consecutive events. Each chunk's orders and customer
    events go to the processor as one batch; then the derived labels that batch resolved, then the chunk's
    labels, go to the joiner. So every vector is stored before a label later in event time looks for it,
    and a label is learned at most one chunk after its event time, like the worker's label consumer, which
    runs beside the order consumer.
    ``progress(n)`` is called after each batch of ``n`` history events. ``topics`` maps event kinds to the
    topic names of the records (default :data:`HISTORY_TOPICS`); the processor's ``kinds`` must know them.
    """
    if batch_size < 1:
        msg = f"batch_size={batch_size!r}; give a positive number of events per batch"
        raise ConfigError(msg)
    feeder = _Feeder(processor, joiner, dict(topics or HISTORY_TOPICS), progress)
    chunk: list[Event] = []
    n = 0
    for event in events:
        chunk.append(event)
        if len(chunk) >= batch_size:
            feeder.chunk(chunk)
            n += len(chunk)
            chunk = []
    if chunk:
        feeder.chunk(chunk)
        n += len(chunk)
    feeder.stats.events = n
    return feeder.stats


def offline_components(
    specs: Sequence[PipelineSpec], learners: dict[str, OnlineLearner] | None = None
) -> tuple[OrderProcessor, LabelJoiner]:
    """The worker's processor and joiner over in-memory stores (fresh learners unless given).

    Examples
    --------
    >>> processor, joiner = offline_components([PipelineSpec.shipped("fraud_detection")])
    >>> [s.name for s in processor.scorers], [s.target for s in joiner.slots]
    (['fraud_detection'], ['fraud'])
    """
    learners = learners if learners is not None else {s.name: new_learner(s) for s in specs}
    return wire_pipelines(
        specs,
        learners,
        FeatureStore(backend=InMemoryOnlineStore()),
        InMemoryVectorStore(),
        lambda _name: InMemoryDeadlineQueue(),
        kinds={HISTORY_TOPICS["order"]: "order", HISTORY_TOPICS["customer_event"]: "customer_event"},
    )


@dataclass
class TrainResult:
    """What :func:`train` did: the learner, its metrics, the registered version and the missed thresholds.

    ``missed`` maps a metric to ``(value, threshold)``; ``evaluated_on`` says which values were checked
    (``holdout`` or ``progressive``).
    """

    spec: PipelineSpec
    learner: OnlineLearner | FamilyLearner
    stats: ReplayStats
    split_ms: int | None
    progressive: dict[str, dict[str, float]]
    holdout: dict[str, float] | None
    holdout_examples: int
    missed: dict[str, tuple[float, float]]
    evaluated_on: str
    seconds: float
    version: str | None = None
    unmatched: int = 0
    baseline: dict[str, float] | None = None
    report: dict[str, Any] | None = None
    published: int | None = None

    @property
    def ok(self) -> bool:
        """Whether every threshold was met."""
        return not self.missed


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def train(
    spec: PipelineSpec,
    events: Sequence[Event],
    registry: Any | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    source: str = "",
    redis_client: Any | None = None,
    key_prefix: str = "",
) -> TrainResult:
    """Replay ``events`` (sorted by event time) through the worker's components; evaluate; register.

    The version registered (when ``registry`` is given) is the next snapshot of ``spec.version``; its
    metadata holds the spec hash, the progressive and holdout metrics, and ``thresholds_missed``. It is
    registered whether or not thresholds are met (the caller decides what a miss means; the CLI exits 1);
    the ``production`` alias is not moved. A family pipeline runs through :func:`train_family`
    (``redis_client`` and ``key_prefix`` are for families: where their outputs go).

    Examples
    --------
    >>> from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
    >>> config = SimulatorConfig(seed=3, orders=400, customers=50, orders_per_day=100,
    ...                          chargeback_delay_days=(0.5, 2.0), settle_delay_days=(0.5, 1.0))
    >>> events = sorted(Simulator(config).events(), key=lambda e: e.event_time)
    >>> result = train(PipelineSpec.shipped("fraud_detection"), events)
    >>> result.learner.examples_learned > 0, result.holdout_examples > 0, result.evaluated_on
    (True, True, 'holdout')
    """
    if not events:
        msg = f"{spec.name}: no events to train on"
        raise ConfigError(msg)
    if spec.family is not None:
        return train_family(spec, events, registry, batch_size, progress, source, redis_client, key_prefix)
    started = time.perf_counter()
    processor, joiner = offline_components([spec])
    slot = joiner.slots[0]
    learner = slot.learner
    order_times = [e.event_time for e in events if isinstance(e, Order)]
    first, last = (
        (order_times[0], order_times[-1]) if order_times else (events[0].event_time, events[-1].event_time)
    )
    split_ms: int | None = None
    holdout: MetricSet | None = None
    if spec.training.validation == "time_based":
        split_ms = first + int(spec.training.split * (last - first))
        holdout = MetricSet(spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window)
        slot.learn_before_ms, slot.holdout = split_ms, holdout
    stats = replay(events, processor, joiner, batch_size=batch_size, progress=progress)
    slot.learn_before_ms, slot.holdout = None, None
    progressive = learner.metric_values()
    thresholds = dict(spec.evaluation.threshold)
    if holdout is not None and holdout.n > 0:
        evaluated_on = "holdout"
        missed = holdout.missed_thresholds(thresholds)
        holdout_values: dict[str, float] | None = holdout.get()["cumulative"]
    else:
        evaluated_on = "progressive"
        missed = learner.metrics.missed_thresholds(thresholds) if learner.metrics is not None else {}
        holdout_values = None
    result = TrainResult(
        spec=spec,
        learner=learner,
        stats=stats,
        split_ms=split_ms,
        progressive=progressive,
        holdout=holdout_values,
        holdout_examples=holdout.n if holdout is not None else 0,
        missed=missed,
        evaluated_on=evaluated_on,
        seconds=time.perf_counter() - started,
        unmatched=slot.unmatched,
    )
    # history is not a Kafka topic: the worker must start its own topics from the beginning
    learner.offsets.clear()
    learner.pending.clear()
    if registry is not None:
        result.version = _register(result, registry, slot, source)
    logger.info(
        "%s: trained on %d events (%d labels learned) in %.1fs; %s",
        spec.name,
        stats.events,
        learner.examples_learned,
        result.seconds,
        "thresholds met" if result.ok else f"missed {sorted(missed)}",
    )
    return result


def train_family(
    spec: PipelineSpec,
    events: Sequence[Event],
    registry: Any | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    source: str = "",
    redis_client: Any | None = None,
    key_prefix: str = "",
) -> TrainResult:
    """Replay ``events`` through a family learner in batches; evaluate (progressive); register; publish.

    Examples
    --------
    >>> from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
    >>> from hanzo.ml.streams.simulation.shop_events import shop_events
    >>> shop = ShopSimulator(ShopSimulatorConfig(seed=1, products=40, customers=50, days=40, sessions=300,
    ...                                          purchases=100, visits=300, demand_products=3))
    >>> result = train(PipelineSpec.shipped("search_ranking"), shop_events(shop))
    >>> result.learner.examples_learned > 0, sorted(result.baseline), result.evaluated_on
    (True, ['ndcg_at_10'], 'progressive')
    """
    if batch_size < 1:
        msg = f"batch_size={batch_size!r}; give a positive number of events per batch"
        raise ConfigError(msg)
    started = time.perf_counter()
    learner = build_family(spec)
    stats = ReplayStats()
    for i in range(0, len(events), batch_size):
        chunk = events[i : i + batch_size]
        learner.learn_batch(chunk)
        stats.events += len(chunk)
        stats.stream_batches += 1
        if progress is not None:
            progress(len(chunk))
    learner.close()
    progressive = learner.metric_values()
    result = TrainResult(
        spec=spec,
        learner=learner,
        stats=stats,
        split_ms=None,
        progressive=progressive,
        holdout=None,
        holdout_examples=0,
        missed=learner.metrics.missed_thresholds(dict(spec.evaluation.threshold)),
        evaluated_on="progressive",
        seconds=time.perf_counter() - started,
        baseline=learner.baseline_values(),
        report=learner.report(),
    )
    if redis_client is not None:
        result.published = learner.publish(redis_client, key_prefix)
    if registry is not None:
        version: str = registry.next_snapshot_version(spec.name, spec.version)
        parent, learner.version = learner.version, version
        meta = family_metadata(learner, parent)
        meta.update(
            {
                "trained_by": "hanzo-ml train",
                "history": {"source": source, "events": stats.events},
                "evaluated_on": "progressive",
                "thresholds": dict(spec.evaluation.threshold),
                "thresholds_missed": {
                    k: {"value": v if math.isfinite(v) else None, "threshold": t}
                    for k, (v, t) in result.missed.items()
                },
            }
        )
        registry.register(learner, spec.name, version, meta)
        result.version = version
    logger.info(
        "%s: trained on %d events (%d examples) in %.1fs; %s",
        spec.name,
        stats.events,
        learner.examples_learned,
        result.seconds,
        "thresholds met" if result.ok else f"missed {sorted(result.missed)}",
    )
    return result


def family_metadata(learner: FamilyLearner, parent: str | None) -> dict[str, Any]:
    """Metadata stored with a family learner's version (the worker's snapshots use it too)."""
    return {
        "time": datetime.now(UTC).isoformat(),
        "family": learner.family,
        "spec_hash": learner.spec_hash,
        "features": list(learner.spec.data.features),
        "metrics": {k: _finite(v) for k, v in learner.metric_values().items()},
        "baseline": _finite(learner.baseline_values()),
        "report": {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in learner.report().items()
        },
        "examples_learned": learner.examples_learned,
        "offsets": dict(learner.offsets),
        "parent_version": parent,
    }


def _register(result: TrainResult, registry: Any, slot: Any, source: str) -> str:
    spec, learner = result.spec, result.learner
    version: str = registry.next_snapshot_version(spec.name, spec.version)
    parent = learner.version
    learner.version = version
    meta = snapshot_metadata(slot, parent)
    meta["metrics"] = {k: _finite(v) for k, v in result.progressive.items()}
    meta.update(
        {
            "trained_by": "hanzo-ml train",
            "history": {
                "source": source,
                "events": result.stats.events,
                "labels": result.stats.labels,
                "derived_labels": result.stats.derived_labels,
                "split_time": (
                    datetime.fromtimestamp(result.split_ms / 1000, UTC).isoformat()
                    if result.split_ms is not None
                    else None
                ),
            },
            "holdout": {
                "examples": result.holdout_examples,
                "metrics": _finite(result.holdout) if result.holdout is not None else None,
            },
            "evaluated_on": result.evaluated_on,
            "thresholds": dict(spec.evaluation.threshold),
            "thresholds_missed": {
                k: {"value": v if math.isfinite(v) else None, "threshold": t}
                for k, (v, t) in result.missed.items()
            },
        }
    )
    registry.register(learner, spec.name, version, meta)
    return version
