"""The Faust app: thin wiring of the runtime's services, timers and web pages.

The hot path is a :class:`~streams.batch_consumer.BatchConsumer` service (batches, one Redis round trip per
batch); the learner is a :class:`~streams.learner_service.LearnerService`; Faust supplies the worker
lifecycle, signal handling, timers and the web server (bound to 127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from mode import Service
from river import metrics as river_metrics
from river import utils as river_utils

from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.monitor import Monitor
from hanzo.ml.monitor.feature_drift import FeatureKind
from hanzo.ml.monitor.metrics import serve_metrics
from hanzo.ml.schemas import wire_json
from hanzo.ml.schemas.dead_letters import DeadLetter, DeadLetterWarnings
from hanzo.ml.schemas.events import to_json
from hanzo.ml.streams.batch_consumer import BatchConsumer, ConsumerOptions
from hanzo.ml.streams.broker_epoch import LogLedger, worker_hooks
from hanzo.ml.streams.drift_responder import DriftResponder, build_responders
from hanzo.ml.streams.family_agent import add_family_agents
from hanzo.ml.streams.leadership import learner_leadership
from hanzo.ml.streams.learner_service import LabelBatchOutcome, LearnerService
from hanzo.ml.streams.order_processor import BatchOutcome
from hanzo.ml.streams.rebuild import EpochMarker, restart_replay
from hanzo.ml.streams.runtime import Runtime
from hanzo.ml.streams.security import faust_broker_kwargs, kafka_client_kwargs, security_from
from hanzo.ml.streams.topics import ensure_topics
from hanzo.ml.streams.watermark import SharedWatermark, publish_scored_through
from hanzo.ml.streams.web import register_views

logger = logging.getLogger(__name__)


class ProducerService(Service):
    """Stops a started aiokafka producer (flushing what it holds) when the worker stops."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        super().__init__()
        self.producer = producer

    async def on_stop(self) -> None:
        """Flush and close the producer."""
        await self.producer.stop()


class EngineService(Service):
    """Closes the on-demand ServingEngine when the worker stops: its registry followers and Redis reader."""

    def __init__(self, engine: ServingEngine) -> None:
        super().__init__()
        self.engine = engine

    async def on_stop(self) -> None:
        """Answer what waits, stop following the registry, close the asyncio Redis client."""
        await self.engine.close()


class Hub:
    """The running services of one worker, shared by the app's tasks, timers and pages."""

    def __init__(self, runtime: Runtime, bootstrap: str) -> None:
        self.runtime = runtime
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self.orders: BatchConsumer | None = None
        self.learner: LearnerService | None = None
        self.started_at = time.time()
        self.redis_ok = True
        self.kafka_ok = True  # the broker answers (BatchConsumer's watcher)
        #: models whose scores also go to the scores topic (``scoring.write_topic``)
        self.score_topic_models = {spec.name for spec in runtime.specs if spec.scoring.write_topic}
        self.last_lag: int | None = None
        #: each owned orders partition's scored-through event time, for a learner in another process
        self.scored_marks: dict[str, int] = {}
        self.dead_letter_warnings = DeadLetterWarnings()
        self.monitors: dict[str, Monitor] = {
            spec.name: Monitor(
                spec.name,
                features=_feature_kinds(spec),
                metrics=runtime.metrics,
                metric=_rolling_metric(spec),
                check_every=spec.monitoring.ks_check_every,
            )
            for spec in runtime.specs
            if spec.monitoring.drift_detectors
        }
        # what a drift alarm on a learned example triggers: alert, challenger or rollback (per pipeline)
        self.responders: dict[str, DriftResponder] = build_responders(
            runtime.specs, runtime.slots, runtime.processor.scorers, runtime.registry, runtime.metrics
        )

    def topics_wanted(self) -> dict[str, int]:
        """Every topic the worker reads or writes, with its partitions."""
        s = self.runtime.settings
        return {t: s.partitions for t in self.runtime.topics.values()}

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes | None]]) -> None:
        """Send ``(topic, value, key)`` messages and wait for every ack (before the batch commits).

        A batch's dead letters, derived labels and scores go out together and are acknowledged
        together: one wait for the broker per batch, not one per kind.
        """
        if not messages:
            return
        assert self.producer is not None
        send = self.producer.send
        futures = [await send(topic, value, key=key) for topic, value, key in messages]
        await asyncio.gather(*futures)

    def dead_letter_messages(self, letters: Sequence[DeadLetter]) -> list[tuple[str, bytes, bytes | None]]:
        """The dead-letter messages of ``letters``."""
        topic = self.runtime.topics["dead-letters"]
        return [(topic, d.to_json(), d.key) for d in letters]

    def dead_letters_sent(self, letters: Sequence[DeadLetter]) -> None:
        """Count the dead letters the broker acknowledged (a failed batch is retried, not counted); warn."""
        if not letters:
            return
        m = self.runtime.metrics
        for (topic, reason), n in Counter((d.topic, d.reason) for d in letters).items():
            m.child(m.dead_letters_total, topic, reason).inc(n)
        self.dead_letter_warnings.note(letters)

    def batch_messages(self, outcome: BatchOutcome) -> list[tuple[str, bytes, bytes | None]]:
        """What an order batch publishes, as ``(topic, value, key)``.

        Dead letters, derived labels (keyed by subject) and the scores of pipelines with
        ``scoring.write_topic`` (keyed by subject).
        """
        topics = self.runtime.topics
        out = self.dead_letter_messages(outcome.dead_letters)
        out += [(topics["labels"], to_json(lab), lab.subject_id.encode()) for lab in outcome.labels]
        if self.score_topic_models:
            scores = [w for w in outcome.scores if w.model in self.score_topic_models]
            for w in scores:
                value = wire_json.dumps({"subject": w.subject, **w.record})
                out.append((topics["scores"], value, w.subject.encode()))
        return out

    def redis_answered(self) -> None:
        """Redis answered the idle state check (no batch to prove it): /health reports it ok again."""
        self.redis_ok = True

    async def handle_orders(self, records: Sequence[ConsumerRecord]) -> None:
        """The order/event batch handler: process, publish dead letters, count."""
        rt = self.runtime
        t0 = time.perf_counter()
        try:
            outcome = await rt.processor.process_async(records)
        except Exception:
            self.redis_ok = False
            rt.metrics.child(rt.metrics.redis_errors_total, "process_batch").inc()
            raise
        self.redis_ok = True
        self.scored_marks = rt.processor.scored_through()  # published by the gauges timer, off the hot path
        await self.publish(self.batch_messages(outcome))
        self.dead_letters_sent(outcome.dead_letters)
        m = rt.metrics
        for name, n in outcome.expired.items():
            if n:
                m.child(m.labels_expired_total, name).inc(n)
        observed: dict[str, tuple[list[dict[str, Any]], list[float], list[float]]] = {}
        for name, x, score, seconds in outcome.predictions:
            if name in self.monitors:
                xs, scores, latencies = observed.setdefault(name, ([], [], []))
                xs.append(x)
                scores.append(score)
                latencies.append(seconds)
        for name, (xs, scores, latencies) in observed.items():
            self.monitors[name].observe_many(xs, scores, latencies)  # as observe() on each, in one call
        per_topic: dict[str, int] = {}
        for r in records:
            per_topic[r.topic] = per_topic.get(r.topic, 0) + 1
        for topic, n in per_topic.items():
            m.child(m.events_processed_total, topic).inc(n)
        m.child(m.duplicate_events_total, rt.topics["orders"]).inc(
            outcome.statuses.get("duplicate", 0) + outcome.statuses.get("fenced", 0)
        )
        m.child(m.late_events_total, rt.topics["orders"]).inc(outcome.statuses.get("late", 0))
        for scorer in rt.processor.scorers:
            m.child(m.predictions_total, scorer.name).inc(outcome.orders)
        for model, (seconds, n) in outcome.scoring_seconds.items():
            hist = m.child(m.scoring_latency_seconds, model)
            for _ in range(n):  # one observation per order, as the histogram's count promises
                hist.observe(seconds)
        m.child(m.processing_latency_seconds, "order_batch").observe(time.perf_counter() - t0)
        m.worker_last_progress_timestamp_seconds.set(time.time())

    async def handle_labels(self, outcome: LabelBatchOutcome) -> None:
        """After each label batch: dead letters and model metrics."""
        if outcome.dead_letters:
            await self.publish(self.dead_letter_messages(outcome.dead_letters))
            self.dead_letters_sent(outcome.dead_letters)
        m = self.runtime.metrics
        for name, examples in outcome.examples.items():
            monitor = self.monitors.get(name)
            alarms = [False] * len(examples)
            if monitor is not None:
                alarms = [monitor.observe_label(y_pred, y_true, loss) for y_pred, y_true, loss in examples]
            responder = self.responders.get(name)
            if responder is not None:
                # between label batches, so a promoted or rolled-back model replaces the live one at once
                responder.observe_batch(outcome.inputs.get(name, []), examples, alarms)
        for slot in self.runtime.slots:
            n = outcome.learned.get(slot.name, 0)
            if n:
                m.child(m.labels_learned_total, slot.name).inc(n)
                m.worker_last_progress_timestamp_seconds.set(time.time())
            d = outcome.drifts.get(slot.name, 0)
            if d and slot.name not in self.monitors:  # a model's Monitor counts its own loss alarms
                m.child(m.drift_alarms_total, slot.name, "adwin", "(loss)").inc(d)
            for window, values in slot.learner.metric_values().items():
                for metric, value in values.items():
                    if value is not None:
                        m.child(m.model_metric, slot.name, metric, window).set(float(value))

    def owned_order_partitions(self) -> set[tuple[str | None, int]]:
        """The orders partitions assigned to this worker now."""
        if self.orders is None or self.orders.consumer is None:
            return set()
        topic = self.runtime.topics["orders"]
        return {(tp.topic, tp.partition) for tp in self.orders.consumer.assignment() if tp.topic == topic}

    def scoring_caught_up(self) -> bool:
        """Whether the last lag reading of the orders/events consumer was zero."""
        return self.last_lag == 0

    async def refresh_gauges(self) -> None:
        """Consumer lag and snapshot counts (a timer calls this)."""
        m = self.runtime.metrics
        if self.orders is not None and self.orders.last_poll:
            # WorkerStalled watches this: the consume loop is alive even when the stream is idle
            m.worker_last_progress_timestamp_seconds.set(self.orders.last_poll)
        if self.orders is not None:
            try:
                lags = await self.orders.lag()
                for topic, lag in lags.items():
                    m.consumer_lag_messages.labels(topic=topic).set(lag)
                self.last_lag = sum(lags.values()) if lags else None
            except Exception:  # lag is advisory; a broker hiccup must not stop the timer
                m.broker_errors_total.labels(op="lag").inc()
                logger.debug("lag refresh failed", exc_info=True)
        try:  # a learner in another process (role: learn) joins labels against this progress
            publish_scored_through(self.runtime.redis, self.runtime.settings.key_prefix, self.scored_marks)
        except Exception:
            m.redis_errors_total.labels(op="scored_through").inc()
        for monitor in self.monitors.values():
            try:
                monitor.publish(self.runtime.redis, self.runtime.settings.key_prefix, ttl_s=86_400)
            except Exception:  # the status is advisory; Redis errors are counted, the timer goes on
                m.redis_errors_total.labels(op="monitor_publish").inc()
        for entity in self.runtime.store.entities:
            age = self.runtime.store.seconds_since_last_write(entity)
            if age is not None:
                m.feature_freshness_seconds.labels(entity=entity).set(age)
        for slot in self.runtime.slots:
            v = slot.learner.version
            if v:
                m.model_version_info.labels(model=slot.name, version=v, alias="latest").set(1)


def _rebuilt(runtime: Runtime) -> None:
    restart_replay(runtime.processor)
    runtime.metrics.state_rebuilds_total.inc()


def _drift_probe(monitor: Monitor) -> Callable[[], bool]:
    def active() -> bool:
        return monitor.drift_active

    return active


def _feature_kinds(spec: PipelineSpec) -> dict[str, FeatureKind]:
    """Monitor kinds of a pipeline's features: categorical and boolean ones get chi-square, the rest KS."""
    return {
        name: "numeric" if spec.data.feature_type(name) == "numeric" else "categorical"
        for name in spec.data.features
    }


def _rolling_metric(spec: PipelineSpec) -> Any:
    """The rolling metric the monitor trends: ROC AUC for classifiers, MAE for regressors."""
    window = spec.evaluation.rolling_window
    if spec.model.task == "classification":
        return river_utils.Rolling(river_metrics.ROCAUC(), window_size=window)
    return river_utils.Rolling(river_metrics.MAE(), window_size=window)


def create_app(runtime: Runtime, bootstrap: str) -> tuple[faust.App, Hub]:
    """Build the Faust app for one worker."""
    s = runtime.settings
    sec = security_from(s)
    client_kwargs = kafka_client_kwargs(sec)
    s.state_dir.mkdir(parents=True, exist_ok=True)  # Faust's datadir goes in it
    app = faust.App(
        s.app_id,
        broker=f"kafka://{bootstrap}",
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=max(0.5, s.session_timeout_s / 3),
        web_host=s.web_host,
        web_port=s.web_port,
        web_bind=s.web_host,
        store="memory://",
        datadir=str(s.state_dir / f"{s.app_id}-data"),  # not the current folder
        topic_partitions=s.partitions,
        producer_acks=-1,
        **faust_broker_kwargs(sec),
    )
    hub = Hub(runtime, bootstrap)
    engine = ServingEngine(
        runtime.store, redis_client=runtime.redis, key_prefix=s.key_prefix, registry=runtime.registry
    )
    for slot in runtime.slots:
        # on-demand scoring starts with the live learner and follows the `production` alias once one exists
        engine.register(slot.name, slot.learner, slot.features, version=slot.learner.version)
    register_views(app, engine)
    learn_only = s.role == "learn"
    if learn_only:
        # no orders here: labels wait for the scoring workers' progress, published in Redis
        runtime.joiner.watermark = SharedWatermark(runtime.redis, s.key_prefix, s.topic_orders, s.partitions)
    else:
        add_family_agents(app, runtime, bootstrap)  # demand, reco, pricing, ranking pipelines (none: no-op)

    def epoch_check_failed(exc: Exception) -> None:
        hub.redis_ok = False
        runtime.metrics.redis_errors_total.labels(op="epoch_check").inc()

    async def recreate() -> None:
        await ensure_topics(bootstrap, hub.topics_wanted(), client_kwargs=client_kwargs)

    @app.task
    async def start_services() -> None:
        hub.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, **client_kwargs)
        await hub.producer.start()
        await app.add_runtime_dependency(ProducerService(hub.producer))  # added first: stopped last
        orders = BatchConsumer(
            ConsumerOptions(
                bootstrap=bootstrap,
                group_id=s.consumer_group,
                topics=(s.topic_orders, s.topic_events),
                batch_max=s.batch_max,
                batch_timeout_ms=s.batch_timeout_ms,
                align_wait_ms=s.align_wait_ms,
                session_timeout_s=s.session_timeout_s,
                client_kwargs=client_kwargs,
            ),
            hub.handle_orders,
            # Redis came back empty (the epoch marker is gone): replay the topics to rebuild it
            guard=EpochMarker(runtime.redis, s.key_prefix, on_error=epoch_check_failed),
            on_rewind=lambda: _rebuilt(runtime),
            # the broker came back empty (embedded Tansu): recreate the topics, new fence epoch, rewind
            ledger=LogLedger(runtime.redis, s.key_prefix, partitions=s.partitions),
            hooks=worker_hooks(hub, runtime.metrics, recreate),
            # an idle stream still checks Redis: its return ends the degraded /health without a batch
            on_idle_ok=hub.redis_answered,
        )
        for slot in runtime.slots:
            monitor = hub.monitors.get(slot.name)
            if monitor is not None:
                slot.drift_active = _drift_probe(monitor)

        def promoted(name: str, version: str) -> None:
            runtime.metrics.promotions_total.labels(model=name).inc()
            runtime.metrics.set_model_version(name, "production", version)

        hub.learner = LearnerService(
            runtime.joiner,
            bootstrap,
            s.topic_labels,
            runtime.registry,
            on_batch=hub.handle_labels,
            on_promote=promoted,
            client_kwargs=client_kwargs,
            autostart=False,  # only the holder of the learner lease learns (streams.leadership)
            batch_max=250,  # learning ~200 µs a label: small batches let order batches in between
        )
        if not learn_only:
            hub.orders = orders
            await app.add_runtime_dependency(orders)
            runtime.processor.expected_partitions = hub.owned_order_partitions
            runtime.joiner.caught_up = hub.scoring_caught_up
        await app.add_runtime_dependency(hub.learner)
        await app.add_runtime_dependency(learner_leadership(runtime, hub.learner))
        for spec in runtime.specs:
            engine.follow(spec.name)
        await app.add_runtime_dependency(EngineService(engine))
        runtime.metrics.worker_up.set(1)
        if learn_only:
            logger.info("worker ready (role learn): labels from %s, no orders", s.topic_labels)
        else:
            logger.info("worker ready: orders from %s, labels from %s", s.topic_orders, s.topic_labels)

    @app.timer(2.0)
    async def gauges() -> None:
        await hub.refresh_gauges()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        consuming = hub.orders is not None or (s.role == "learn" and hub.learner is not None)
        ok = consuming and hub.learner is not None and hub.redis_ok and hub.kafka_ok
        body = {
            "status": "ok" if ok else "degraded",
            "redis": "ok" if hub.redis_ok else "failing",
            "kafka": "ok" if hub.kafka_ok else "failing",
            "events": hub.orders.events if hub.orders else 0,
            "labels": hub.learner.labels_consumed if hub.learner else 0,
            "models": {
                sl.name: {"version": sl.learner.version, "examples": sl.learner.examples_learned}
                for sl in runtime.slots
            },
        }
        return web.json(body, status=200 if ok else 503)

    return app, hub


def start_metrics_server(runtime: Runtime) -> Any:
    """Serve /metrics on the configured loopback address."""
    s = runtime.settings
    return serve_metrics(runtime.metrics_registry, host=s.metrics_host, port=s.metrics_port)
