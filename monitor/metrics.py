"""Every Prometheus metric of hanzo-ml, declared once, on a registry the caller passes in.

Names carry the ``hanzo_`` prefix and their unit; label values are bounded sets (topic, stage, model, entity
*type*, feature name), never entity ids. The attributes of :class:`Metrics` are the names without the prefix.

============================================  =========  ================================
metric                                        type       labels
============================================  =========  ================================
hanzo_events_processed_total                  counter    topic
hanzo_dead_letters_total                      counter    topic, reason
hanzo_late_events_total                       counter    topic
hanzo_duplicate_events_total                  counter    topic
hanzo_processing_latency_seconds              histogram  stage
hanzo_scoring_latency_seconds                 histogram  model
hanzo_consumer_lag_messages                   gauge      topic
hanzo_feature_freshness_seconds               gauge      entity (type, e.g. ``customer``)
hanzo_model_metric                            gauge      model, metric, window
hanzo_predictions_total                       counter    model
hanzo_labels_learned_total                    counter    model
hanzo_labels_expired_total                    counter    model
hanzo_drift_statistic                         gauge      model, detector, feature
hanzo_drift_p_value                           gauge      model, detector, feature
hanzo_drift_alarms_total                      counter    model, detector, feature
hanzo_drift_active                            gauge      model, kind
hanzo_snapshots_total                         counter    model
hanzo_promotions_total                        counter    model
hanzo_rollbacks_total                         counter    model
hanzo_drift_responses_total                   counter    model, action
hanzo_model_version_info                      gauge      model, version, alias
hanzo_redis_errors_total                      counter    op
hanzo_broker_errors_total                     counter    op
hanzo_state_rebuilds_total                    counter
hanzo_worker_last_progress_timestamp_seconds  gauge
hanzo_worker_up                               gauge
============================================  =========  ================================

:meth:`Metrics.describe` returns the same list with each metric's help text.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

PREFIX = "hanzo_"

#: Buckets of the scoring latency: 50 µs to 1 s, fine below 10 ms (the p99 target) and with a bound at it.
SCORING_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005,
    0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

#: Buckets of the per-stage processing latency: 100 µs to 10 s.
PROCESSING_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

MetricType = Literal["counter", "gauge", "histogram"]
_M = TypeVar("_M", Counter, Gauge, Histogram)


@dataclass(frozen=True)
class MetricDoc:
    """One line of the metric list: exposed name, type, label names and help text."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


class Metrics:
    """All Prometheus metrics of hanzo-ml, registered on ``registry``.

    Parameters
    ----------
    registry
        Where to register; the caller owns it (never the global default registry), so tests and several
        workers in one process each get their own.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from hanzo.ml.monitor import Metrics
    >>> metrics = Metrics(CollectorRegistry())
    >>> metrics.events_processed_total.labels(topic="orders").inc(3)
    >>> metrics.scoring_latency_seconds.labels(model="churn_prediction").observe(0.0004)
    >>> metrics.set_model_version("churn_prediction", alias="production", version="1.2.3")
    >>> text = generate_latest(metrics.registry).decode()
    >>> 'hanzo_events_processed_total{topic="orders"} 3.0' in text
    True
    >>> 'hanzo_model_version_info{alias="production",model="churn_prediction",version="1.2.3"} 1.0' in text
    True
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._docs: list[MetricDoc] = []
        self._versions: dict[tuple[str, str], str] = {}
        self._versions_lock = threading.Lock()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

        # Ingestion.
        self.events_processed_total = self._counter(
            "events_processed_total", "Events processed, by input topic.", "topic"
        )
        self.dead_letters_total = self._counter(
            "dead_letters_total",
            "Events sent to the dead-letter topic, by input topic and reason.",
            "topic",
            "reason",
        )
        self.late_events_total = self._counter(
            "late_events_total", "Events older than the longest window, counted and not applied.", "topic"
        )
        self.duplicate_events_total = self._counter(
            "duplicate_events_total", "Re-delivered events skipped by the event-id dedupe.", "topic"
        )
        self.processing_latency_seconds = self._histogram(
            "processing_latency_seconds",
            "Time spent per event or batch in a stage.",
            PROCESSING_LATENCY_BUCKETS,
            "stage",
        )
        self.scoring_latency_seconds = self._histogram(
            "scoring_latency_seconds",
            "Time to score one request, by model.",
            SCORING_LATENCY_BUCKETS,
            "model",
        )
        self.consumer_lag_messages = self._gauge(
            "consumer_lag_messages", "Messages between the committed offset and the end, by topic.", "topic"
        )
        self.feature_freshness_seconds = self._gauge(
            "feature_freshness_seconds", "Age of the newest feature update, by entity type.", "entity"
        )
        # Models.
        self.model_metric = self._gauge(
            "model_metric",
            "Online evaluation metric; window is cumulative or rolling.",
            "model",
            "metric",
            "window",
        )
        self.predictions_total = self._counter("predictions_total", "Predictions served, by model.", "model")
        self.labels_learned_total = self._counter(
            "labels_learned_total", "Labelled examples learned, by model.", "model"
        )
        self.labels_expired_total = self._counter(
            "labels_expired_total",
            "Stored feature vectors whose label never came within the horizon.",
            "model",
        )
        # Drift.
        self.drift_statistic = self._gauge(
            "drift_statistic", "Effect size of the last drift test (KS statistic, Cramér's V).",
            "model", "detector", "feature",
        )  # fmt: skip
        self.drift_p_value = self._gauge(
            "drift_p_value", "p-value of the last drift test.", "model", "detector", "feature"
        )
        self.drift_alarms_total = self._counter(
            "drift_alarms_total", "Drift alarms raised (one per drift).", "model", "detector", "feature"
        )
        self.drift_active = self._gauge(
            "drift_active",
            "1 while a drift of this kind (feature, prediction, loss) is active.",
            "model",
            "kind",
        )
        # Registry.
        self.snapshots_total = self._counter("snapshots_total", "Model snapshots written.", "model")
        self.promotions_total = self._counter("promotions_total", "Versions promoted to an alias.", "model")
        self.rollbacks_total = self._counter("rollbacks_total", "Rollbacks to an earlier version.", "model")
        self.drift_responses_total = self._counter(
            "drift_responses_total",
            "Drift response actions (alert, challenger_started, challenger_dropped, promote, rollback).",
            "model",
            "action",
        )
        self.model_version_info = self._gauge(
            "model_version_info", "1 for the version an alias points to.", "model", "version", "alias"
        )
        # Dependencies and liveness.
        self.redis_errors_total = self._counter("redis_errors_total", "Failed Redis operations.", "op")
        self.broker_errors_total = self._counter("broker_errors_total", "Failed broker operations.", "op")
        self.state_rebuilds_total = self._counter(
            "state_rebuilds_total", "Times Redis came back empty and the worker replayed its partitions."
        )
        self.worker_last_progress_timestamp_seconds = self._gauge(
            "worker_last_progress_timestamp_seconds",
            "Unix time of the worker's last progress (batch handled).",
        )
        self.worker_up = self._gauge("worker_up", "1 while the worker runs.")

    def _counter(self, name: str, help_: str, *labels: str) -> Counter:
        self._docs.append(MetricDoc(PREFIX + name, "counter", labels, help_))
        return Counter(PREFIX + name, help_, labels, registry=self.registry)

    def _gauge(self, name: str, help_: str, *labels: str) -> Gauge:
        self._docs.append(MetricDoc(PREFIX + name, "gauge", labels, help_))
        return Gauge(PREFIX + name, help_, labels, registry=self.registry)

    def _histogram(self, name: str, help_: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
        self._docs.append(MetricDoc(PREFIX + name, "histogram", labels, help_))
        return Histogram(PREFIX + name, help_, labels, buckets=buckets, registry=self.registry)

    def child(self, metric: _M, *values: str) -> _M:
        """``metric.labels(*values)``, cached: the hot path asks for the same few series every batch.

        ``labels()`` checks the values and takes the metric's lock on each call (~1 us here), a cached
        child is a dict look-up (~0.2 us). Values go in the order the labels were declared. Not for a
        metric whose series are removed (``model_version_info``): a removed child would count unseen.

        Examples
        --------
        >>> from prometheus_client import CollectorRegistry
        >>> m = Metrics(CollectorRegistry())
        >>> child = m.child(m.dead_letters_total, "orders", "schema")
        >>> child is m.child(m.dead_letters_total, "orders", "schema")
        True
        >>> child is m.dead_letters_total.labels("orders", "schema")
        True
        """
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def describe(self) -> list[MetricDoc]:
        """Every metric: name, type, label names, help text, in declaration order."""
        return list(self._docs)

    def exposed_names(self) -> set[str]:
        """Every series name Prometheus can see (``_total``, ``_bucket``/``_sum``/``_count`` included)."""
        names: set[str] = set()
        for doc in self._docs:
            if doc.type == "counter":
                names |= {doc.name, doc.name.removesuffix("_total") + "_created"}
            elif doc.type == "histogram":
                names |= {doc.name + s for s in ("_bucket", "_sum", "_count", "_created")}
            else:
                names.add(doc.name)
        return names

    def set_model_version(self, model: str, alias: str, version: str) -> None:
        """Point ``model_version_info{model, alias}`` at ``version``, dropping the old version's series."""
        with self._versions_lock:
            previous = self._versions.get((model, alias))
            if previous is not None and previous != version:
                self.model_version_info.remove(model, previous, alias)
            self._versions[(model, alias)] = version
            self.model_version_info.labels(model=model, version=version, alias=alias).set(1)


class MetricsServer:
    """A running ``/metrics`` HTTP server (prometheus_client's WSGI server in a daemon thread)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        """The address the server is bound to."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on (the real one when 0 was asked for)."""
        return int(self._server.server_port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
        logger.info("metrics server on %s:%d stopped", self.host, self.port)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_metrics(registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics``; ``port=0`` takes a free port.

    Binds to loopback unless told otherwise (pass ``settings.metrics_host`` / ``settings.metrics_port``).
    Returns a :class:`MetricsServer` whose ``stop()`` shuts it down.

    Examples
    --------
    >>> import urllib.request
    >>> from prometheus_client import CollectorRegistry
    >>> from hanzo.ml.monitor import Metrics, serve_metrics
    >>> metrics = Metrics(CollectorRegistry())
    >>> metrics.worker_up.set(1)
    >>> with serve_metrics(metrics.registry, port=0) as server:
    ...     body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read()
    >>> b"hanzo_worker_up 1.0" in body
    True
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    logger.info("serving metrics on http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread)
