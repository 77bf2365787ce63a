"""The model families in the worker: one service per family pipeline, reading orders and events on its own.

For every family pipeline the worker runs (``hanzo-ml worker --pipeline demand_forecasting ...``;
:attr:`config.pipeline.PipelineSpec.family`), :func:`add_family_agents` starts a :class:`FamilyService`:

- it restores the family's learner from the registry's latest version (a ``hanzo-ml train`` or an earlier
  snapshot), else builds a fresh one (:func:`learners.families.build_family`);
- it reads every partition of the orders and events topics with its own aiokafka consumer (no consumer
  group: a family is learned by one worker, as each model has one writer), from the offsets stored in the
  learner (the beginning for a fresh one), so recovery is the latest snapshot plus replay;
- it learns each batch in a thread (the event loop stays free for the scoring path), writes the family's
  Redis outputs every ``publish_every`` events or ``publish_seconds`` seconds, and snapshots into the
  registry every ``snapshots.every_examples`` examples or ``snapshots.every_seconds`` seconds of the spec.

With no family pipeline configured nothing is added: the scoring path pays nothing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from mode import Service

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.learners.families import FamilyLearner, build_family
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.schemas.events import parse_event
from hanzo.ml.streams.learner_service import register_snapshot, snapshot_due
from hanzo.ml.streams.runtime import restore_latest
from hanzo.ml.streams.train import family_metadata

logger = logging.getLogger(__name__)

__all__ = ["FamilyService", "add_family_agents", "restore_family"]


def restore_family(spec: PipelineSpec, registry: Any) -> FamilyLearner:
    """The latest registered version of ``spec.name`` when it is a family learner, else a fresh one."""
    return restore_latest(spec, registry, FamilyLearner, build_family)


class FamilyService(Service):
    """Consume orders and events for one family learner; publish its outputs; snapshot it.

    Parameters
    ----------
    learner
        The family learner (restored or fresh).
    bootstrap
        Kafka bootstrap servers.
    topics
        The orders and events topics.
    registry
        Where snapshots go (a :class:`registry.Registry`).
    redis
        A sync ``redis.Redis`` for the outputs.
    key_prefix
        Prefix of every Redis key.
    publish_every, publish_seconds
        Outputs are written after this many events, or this many seconds, whichever comes first.
    client_kwargs
        TLS / SASL options of the Kafka client (``streams.security.kafka_client_kwargs``).
    """

    def __init__(
        self,
        learner: FamilyLearner,
        bootstrap: str,
        topics: Sequence[str],
        registry: Any,
        redis: Any,
        key_prefix: str = "",
        publish_every: int = 5000,
        publish_seconds: float = 5.0,
        batch_max: int = 2000,
        batch_timeout_ms: int = 100,
        client_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.learner = learner
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.registry = registry
        self.redis = redis
        self.key_prefix = key_prefix
        self.publish_every = publish_every
        self.publish_seconds = publish_seconds
        self.batch_max = batch_max
        self.batch_timeout_ms = batch_timeout_ms
        self.client_kwargs = dict(client_kwargs or {})
        self.consumer: AIOKafkaConsumer | None = None
        self.events = 0
        self.invalid = 0
        self.published = 0
        self.snapshots: list[str] = []
        self._since_publish = 0
        self._published_at = time.monotonic()
        self._snapshot_examples = learner.examples_learned
        self._snapshot_at = time.monotonic()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Start the consumer and assign every partition of the topics from the learner's offsets."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_max,
            fetch_max_wait_ms=self.batch_timeout_ms,
            **self.client_kwargs,
        )
        await self.consumer.start()
        tps: list[TopicPartition] = []
        for topic in self.topics:
            parts: set[int] | None = None
            for _ in range(300):
                await self.consumer.topics()
                parts = self.consumer.partitions_for_topic(topic)
                if parts:
                    break
                await asyncio.sleep(0.1)
            if not parts:
                msg = f"{self.learner.name}: topic {topic!r} has no partitions at {self.bootstrap}"
                raise RuntimeError(msg)
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self.consumer.assign(tps)
        for tp in tps:
            start = self.learner.offsets.get(f"{tp.topic}:{tp.partition}", 0)
            if start > 0:
                self.consumer.seek(tp, start)
            else:
                await self.consumer.seek_to_beginning(tp)
        logger.info(
            "%s reads %s from %s", self.learner.name, ", ".join(self.topics), self.learner.offsets or "0"
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
        while not self.should_stop:
            batches = await self.consumer.getmany(
                timeout_ms=self.batch_timeout_ms, max_records=self.batch_max
            )
            if batches:
                await asyncio.to_thread(self._learn, batches)
            await self._maybe_publish(force=False)
            await self._maybe_snapshot()

    def _learn(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batches.items():
            events = []
            for r in records:
                try:
                    events.append(parse_event(r.value))
                except ValidationError:
                    self.invalid += 1  # the scoring path dead-letters it; the family skips it
            self.learner.learn_batch(events, source=f"{tp.topic}:{tp.partition}")
            self.learner.offsets[f"{tp.topic}:{tp.partition}"] = records[-1].offset + 1
            self.events += len(records)
            self._since_publish += len(records)

    async def _maybe_publish(self, force: bool) -> None:
        due = self._since_publish >= self.publish_every or (
            self._since_publish > 0 and time.monotonic() - self._published_at >= self.publish_seconds
        )
        if not (due or force):
            return
        try:
            n = await asyncio.to_thread(self.learner.publish, self.redis, self.key_prefix)
        except Exception:  # Redis down: the outputs are rewritten at the next publish
            logger.exception("%s: writing outputs failed; the next publish retries", self.learner.name)
            return
        self.published += n
        self._since_publish = 0
        self._published_at = time.monotonic()

    async def _maybe_snapshot(self) -> None:
        policy = self.learner.spec.snapshots
        if snapshot_due(
            self.learner.examples_learned - self._snapshot_examples,
            time.monotonic() - self._snapshot_at,
            bool(self.snapshots),
            policy.every_examples,
            policy.every_seconds,
            policy.min_seconds,
        ):
            await self.snapshot()

    async def snapshot(self) -> str | None:
        """Register a copy of the learner (taken now, written in a thread); returns the version."""
        learner = self.learner
        spec = learner.spec
        parent = learner.version
        version: str = self.registry.next_snapshot_version(spec.name, spec.version)
        learner.version = version
        frozen = await asyncio.to_thread(copy.deepcopy, learner)
        meta = family_metadata(frozen, parent)
        self._snapshot_examples = learner.examples_learned
        self._snapshot_at = time.monotonic()
        if not await register_snapshot(self.registry, frozen, spec.name, version, meta, learner, parent):
            return None
        self.snapshots.append(version)
        return version


def add_family_agents(app: Any, runtime: Any, bootstrap: str) -> list[FamilyService]:
    """Start a :class:`FamilyService` for each family pipeline of ``runtime`` when the app starts.

    Returns the services (filled in when the app's task runs); nothing is added without family pipelines.
    """
    families: list[PipelineSpec] = list(getattr(runtime, "families", ()))
    services: list[FamilyService] = []
    if not families:
        return services
    from hanzo.ml.streams.security import kafka_client_kwargs, security_from

    s = runtime.settings

    async def start_family_services() -> None:
        for spec in families:
            learner = await asyncio.to_thread(restore_family, spec, runtime.registry)
            service = FamilyService(
                learner,
                bootstrap,
                (s.topic_orders, s.topic_events),
                runtime.registry,
                runtime.redis,
                key_prefix=s.key_prefix,
                batch_max=s.batch_max,
                client_kwargs=kafka_client_kwargs(security_from(s)),
            )
            services.append(service)
            await app.add_runtime_dependency(service)
        logger.info("model families running: %s", ", ".join(f.name for f in families))

    app.task(start_family_services)
    return services
