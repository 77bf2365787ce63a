"""Everything a worker runs, built from settings and pipeline specs, without Faust (tests use it directly).

``build_runtime`` connects to Redis, loads the feature definitions, restores each pipeline's learner from
the registry's latest snapshot (or builds a fresh model) and wires the order processor and label joiner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from config.errors import ConfigError, RegistryError
from config.pipeline import PipelineSpec
from config.settings import Settings
from features import FeatureStore, RedisOnlineStore
from learners.factory import build_model
from learners.metrics import MetricSet
from learners.online import OnlineLearner
from monitor.metrics import Metrics
from registry import Registry
from streams.learner_service import LabelJoiner, LearnerSlot
from streams.order_processor import OrderProcessor, Scorer

logger = logging.getLogger(__name__)

DEFAULT_PIPELINES = ("fraud_detection",)


def resolve_spec_path(name_or_path: str) -> Path:
    """A pipeline by file path, or by the name of a shipped pipeline (``fraud_detection``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    shipped = resources.files("config") / "pipelines" / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    names = sorted(
        f.name.removesuffix(".yaml")
        for f in (resources.files("config") / "pipelines").iterdir()
        if f.name.endswith(".yaml")
    )
    msg = f"pipeline {name_or_path!r} is neither a YAML file nor a shipped one; shipped: {', '.join(names)}"
    raise ConfigError(msg)


def restore_learner(spec: PipelineSpec, registry: Registry) -> OnlineLearner:
    """The latest snapshot of ``spec.name`` when there is one, else a fresh model from the spec."""
    try:
        learner = registry.load(spec.name, "latest")
    except RegistryError:
        learner = None
    if isinstance(learner, OnlineLearner):
        logger.info(
            "%s: continuing from %s (%d examples)", spec.name, learner.version, learner.examples_learned
        )
        return learner
    model = build_model(spec)
    metrics = MetricSet(spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window)
    return OnlineLearner(
        spec.name,
        model,
        metrics,
        task=spec.model.task,
        dedupe_horizon_ms=int(spec.labels.horizon_days * 86_400_000),
    )


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

    @property
    def slots(self) -> list[LearnerSlot]:
        """The learners this worker owns."""
        return self.joiner.slots


def build_runtime(
    settings: Settings,
    redis_url: str,
    pipelines: Sequence[str] = DEFAULT_PIPELINES,
    redis_client: Any | None = None,
) -> Runtime:
    """Wire a worker's components (connects to Redis; Kafka is left to the services)."""
    client = redis_client or redis.Redis.from_url(
        redis_url,
        password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        socket_timeout=5,
        socket_connect_timeout=3,
    )
    store = FeatureStore(backend=RedisOnlineStore(client, key_prefix=settings.key_prefix))
    hmac_key = settings.registry_hmac_key.get_secret_value().encode() if settings.registry_hmac_key else None
    registry = Registry(settings.registry_path, hmac_key=hmac_key)
    specs = [PipelineSpec.from_yaml(resolve_spec_path(p)) for p in pipelines]
    metrics_registry = CollectorRegistry()
    metrics = Metrics(metrics_registry)
    scorers: list[Scorer] = []
    slots: list[LearnerSlot] = []
    for spec in specs:
        learner = restore_learner(spec, registry)
        features = tuple(spec.data.features)
        horizon_s = int(spec.labels.horizon_days * 86_400)
        scorers.append(
            Scorer(spec.name, features, learner, score_ttl_s=spec.scoring.ttl_s, vector_ttl_s=horizon_s)
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
                last_snapshot_examples=learner.examples_learned,
            )
        )
    topics = {
        "orders": settings.topic_orders,
        "events": settings.topic_events,
        "labels": settings.topic_labels,
        "scores": settings.topic_scores,
        "dead-letters": settings.topic_dead_letters,
    }
    processor = OrderProcessor(
        store,
        client,
        scorers,
        kinds={settings.topic_orders: "order", settings.topic_events: "customer_event"},
        key_prefix=settings.key_prefix,
    )
    joiner = LabelJoiner(slots, client, key_prefix=settings.key_prefix)
    return Runtime(
        settings, client, store, registry, specs, processor, joiner, metrics, metrics_registry, topics
    )
