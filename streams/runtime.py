"""Everything a worker runs, built from settings and pipeline specs, without Faust (tests use it directly).

``build_runtime`` connects to Redis, loads the feature definitions, restores each pipeline's learner from
the registry's latest snapshot (or builds a fresh model) and wires the order processor and label joiner
with :func:`wire_pipelines`, which ``hanzo-ml train`` also uses (over in-memory stores), so history and the
live stream run through the same components.

Several pipelines share one worker: order-level pipelines (``data.entity: order``) score each order;
customer-level ones (``data.entity: customer``) score the customer at each order, a reference point for
derived labels. Each model has one writer, its :class:`~streams.learner_service.LearnerSlot`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.config.settings import Settings
from hanzo.ml.features import FeatureStore, RedisOnlineStore
from hanzo.ml.features.definitions import RAW_FEATURES, load_definitions
from hanzo.ml.learners.derived_labels import (
    CHURN_FEATURES,
    DeadlineQueue,
    DerivedLabeler,
    RedisDeadlineQueue,
    add_churn_features,
)
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.mini_batch import check_mini_batch
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import RedisVectorStore, VectorStore
from hanzo.ml.monitor.metrics import Metrics
from hanzo.ml.registry import Registry
from hanzo.ml.streams.learner_service import LabelJoiner, LearnerSlot
from hanzo.ml.streams.order_processor import OrderProcessor, Scorer
from hanzo.ml.streams.security import make_async_redis, make_redis, security_from

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PIPELINES = ("fraud_detection",)


def resolve_spec_path(name_or_path: str) -> Path:
    """A pipeline by file path, or by the name of a shipped pipeline (``fraud_detection``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    shipped = resources.files("hanzo.ml.config") / "pipelines" / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    names = sorted(
        f.name.removesuffix(".yaml")
        for f in (resources.files("hanzo.ml.config") / "pipelines").iterdir()
        if f.name.endswith(".yaml")
    )
    msg = f"pipeline {name_or_path!r} is neither a YAML file nor a shipped one; shipped: {', '.join(names)}"
    raise ConfigError(msg)


def new_learner(spec: PipelineSpec) -> OnlineLearner:
    """A fresh learner for ``spec``: its model, its metric set, its task and label horizon."""
    model = build_model(spec)
    metrics = MetricSet(spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window)
    return OnlineLearner(
        spec.name,
        model,
        metrics,
        task=spec.model.task,
        dedupe_horizon_ms=int(spec.labels.horizon_days * 86_400_000),
    )


def restore_latest(spec: PipelineSpec, registry: Any, kind: type[T], fresh: Callable[[PipelineSpec], T]) -> T:
    """The latest registered version of ``spec.name`` when it is a ``kind``, else ``fresh(spec)``."""
    try:
        learner = registry.load(spec.name, "latest")
    except RegistryError:
        learner = None
    if isinstance(learner, kind):
        logger.info(
            "%s: continuing from %s (%d examples)",
            spec.name,
            getattr(learner, "version", None),
            getattr(learner, "examples_learned", 0),
        )
        return learner
    if learner is not None:
        logger.warning(
            "%s: the latest registered version is a %s, not a %s; starting a fresh model",
            spec.name,
            type(learner).__name__,
            kind.__name__,
        )
    return fresh(spec)


def restore_learner(spec: PipelineSpec, registry: Registry) -> OnlineLearner:
    """The latest version of ``spec.name`` (a snapshot, or one ``hanzo-ml train`` registered), else new."""
    return restore_latest(spec, registry, OnlineLearner, new_learner)


def ensure_features(specs: Sequence[PipelineSpec], store: FeatureStore) -> None:
    """Add the derived features the specs need (see :mod:`learners.derived_labels`); check all exist.

    Raises
    ------
    ConfigError
        Naming the pipeline and the feature that neither the store (customer entity) nor the order has.
    """
    wanted = {f for spec in specs for f in spec.data.features}
    if wanted & set(CHURN_FEATURES):
        add_churn_features(store)
    known = {f.name for f in store.list_features() if f.entity == "customer"} | {r[0] for r in RAW_FEATURES}
    for spec in specs:
        missing = [f for f in spec.data.features if f not in known]
        if missing:
            msg = (
                f"pipeline {spec.name!r}: data.features {', '.join(map(repr, missing))} are neither "
                "customer features of the feature store nor request-time order features; "
                f"known: {', '.join(sorted(known))}"
            )
            raise ConfigError(msg)


def wire_pipelines(
    specs: Sequence[PipelineSpec],
    learners: Mapping[str, OnlineLearner],
    store: FeatureStore,
    vectors: VectorStore,
    deadline_queue: Callable[[str], DeadlineQueue],
    kinds: Mapping[str, str],
) -> tuple[OrderProcessor, LabelJoiner]:
    """Wire the order processor and the label joiner of ``specs`` over the given stores.

    ``deadline_queue(name)`` gives the deadline queue of a pipeline with derived labels.
    """
    ensure_features(specs, store)
    scorers: list[Scorer] = []
    slots: list[LearnerSlot] = []
    for spec in specs:
        learner = learners[spec.name]
        features = tuple(spec.data.features)
        horizon_s = int(spec.labels.horizon_days * 86_400)
        labeler = (
            DerivedLabeler(spec.name, spec.data.label, spec.labels.horizon_days, deadline_queue(spec.name))
            if spec.labels.kind == "derived"
            else None
        )
        scorers.append(
            Scorer(
                spec.name,
                features,
                learner,
                score_ttl_s=spec.scoring.ttl_s,
                vector_ttl_s=horizon_s,
                level="customer" if spec.data.entity == "customer" else "order",
                labeler=labeler,
            )
        )
        slots.append(
            LearnerSlot(
                name=spec.name,
                target=spec.data.label,
                learner=learner,
                base_version=spec.version,
                features=features,
                spec_hash=spec.spec_hash,
                snapshot_every=spec.snapshots.every_examples,
                snapshot_seconds=spec.snapshots.every_seconds,
                snapshot_min_seconds=spec.snapshots.min_seconds,
                last_snapshot_examples=learner.examples_learned,
                thresholds=dict(spec.evaluation.threshold),
                mini_batch=check_mini_batch(spec),
            )
        )
    processor = OrderProcessor(store, None, scorers, kinds, vectors=vectors)
    # a label waits for its vector until scoring has passed the label's event time (plus a grace)
    joiner = LabelJoiner(slots, None, vectors=vectors, watermark=lambda: processor.watermark_ms)
    return processor, joiner


@dataclass
class Runtime:
    """The worker's components, wired."""

    settings: Settings
    redis: Any
    store: FeatureStore
    registry: Registry
    specs: list[PipelineSpec]
    processor: OrderProcessor
    joiner: LabelJoiner
    metrics: Metrics
    metrics_registry: CollectorRegistry
    topics: dict[str, str] = field(default_factory=dict)
    families: list[PipelineSpec] = field(default_factory=list)  # model families (streams.family_agent)

    @property
    def slots(self) -> list[LearnerSlot]:
        """The learners this worker owns."""
        return self.joiner.slots


def feature_lateness_ms(settings: Settings, definitions: Sequence[Any]) -> int:
    """Allowed lateness of feature updates: the setting, else the longest window (ARCHITECTURE.md).

    The orders and events topics are consumed side by side, so one can run days ahead of the other in
    event time; judging lateness against the longest window keeps that skew from dropping events.
    """
    if settings.feature_allowed_lateness_s is not None:
        return int(settings.feature_allowed_lateness_s * 1000)
    windows = [d.window_ms for d in definitions if d.window_ms]
    return max(windows) if windows else 3_600_000


def build_runtime(
    settings: Settings,
    redis_url: str,
    pipelines: Sequence[str] = DEFAULT_PIPELINES,
    redis_client: Any | None = None,
) -> Runtime:
    """Wire a worker's components (connects to Redis; Kafka is left to the services)."""
    # ACL user, password and TLS options come from the settings (streams.security)
    sec = security_from(settings)
    client = redis_client or make_redis(redis_url, sec, socket_timeout=5, socket_connect_timeout=3)
    prefix = settings.key_prefix
    definitions = load_definitions()
    store = FeatureStore(
        definitions=definitions,
        backend=RedisOnlineStore(
            client,
            key_prefix=prefix,
            # on-demand predictions read features over redis.asyncio (the loop scores meanwhile)
            async_factory=partial(
                make_async_redis, redis_url, sec, socket_timeout=5, socket_connect_timeout=3
            ),
        ),
        allowed_lateness_ms=feature_lateness_ms(settings, definitions),
    )
    hmac_key = settings.registry_hmac_key.get_secret_value().encode() if settings.registry_hmac_key else None
    registry = Registry(settings.registry_path, hmac_key=hmac_key)
    loaded = [PipelineSpec.from_yaml(resolve_spec_path(p)) for p in pipelines]
    # the model families (demand, reco, pricing, ranking) run in streams.family_agent, not the order processor
    specs = [spec for spec in loaded if spec.family is None]
    families = [spec for spec in loaded if spec.family is not None]
    metrics_registry = CollectorRegistry()
    metrics = Metrics(metrics_registry)
    learners = {spec.name: restore_learner(spec, registry) for spec in specs}
    processor, joiner = wire_pipelines(
        specs,
        learners,
        store,
        RedisVectorStore(client, key_prefix=prefix),
        lambda name: RedisDeadlineQueue(client, name, key_prefix=prefix),
        kinds={settings.topic_orders: "order", settings.topic_events: "customer_event"},
    )
    processor.redis = joiner.redis = client
    processor.key_prefix = joiner.key_prefix = prefix
    topics = {
        "orders": settings.topic_orders,
        "events": settings.topic_events,
        "labels": settings.topic_labels,
        "scores": settings.topic_scores,
        "dead-letters": settings.topic_dead_letters,
    }
    parts = (settings, client, store, registry, specs, processor, joiner, metrics, metrics_registry, topics)
    return Runtime(*parts, families=families)
