from __future__ import annotations

import socket
import urllib.error
import urllib.request

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hanzo.ml import monitor
from hanzo.ml.monitor import Metrics, serve_metrics
from hanzo.ml.monitor.metrics import SCORING_LATENCY_BUCKETS

#: The metric list agreed in the design (name without prefix -> type, labels).
EXPECTED = {
    "events_processed_total": (Counter, ("topic",)),
    "dead_letters_total": (Counter, ("topic", "reason")),
    "late_events_total": (Counter, ("topic",)),
    "duplicate_events_total": (Counter, ("topic",)),
    "processing_latency_seconds": (Histogram, ("stage",)),
    "scoring_latency_seconds": (Histogram, ("model",)),
    "consumer_lag_messages": (Gauge, ("topic",)),
    "feature_freshness_seconds": (Gauge, ("entity",)),
    "model_metric": (Gauge, ("model", "metric", "window")),
    "predictions_total": (Counter, ("model",)),
    "labels_learned_total": (Counter, ("model",)),
    "labels_expired_total": (Counter, ("model",)),
    "drift_statistic": (Gauge, ("model", "detector", "feature")),
    "drift_p_value": (Gauge, ("model", "detector", "feature")),
    "drift_alarms_total": (Counter, ("model", "detector", "feature")),
    "drift_active": (Gauge, ("model", "kind")),
    "snapshots_total": (Counter, ("model",)),
    "promotions_total": (Counter, ("model",)),
    "rollbacks_total": (Counter, ("model",)),
    "drift_responses_total": (Counter, ("model", "action")),
    "model_version_info": (Gauge, ("model", "version", "alias")),
    "redis_errors_total": (Counter, ("op",)),
    "broker_errors_total": (Counter, ("op",)),
    "state_rebuilds_total": (Counter, ()),
    "worker_last_progress_timestamp_seconds": (Gauge, ()),
    "worker_up": (Gauge, ()),
}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_every_metric_is_declared_with_its_type_and_labels(metrics):
    assert [d.name for d in metrics.describe()] == [f"hanzo_{n}" for n in EXPECTED]
    for name, (kind, labels) in EXPECTED.items():
        collector = getattr(metrics, name)
        assert isinstance(collector, kind), name
        assert tuple(collector._labelnames) == labels, name
    for doc in metrics.describe():
        assert doc.help, doc.name
        assert doc.name in monitor.metrics.__doc__, f"{doc.name} missing from the module's metric list"


def test_metrics_use_the_callers_registry_only():
    before = {m.name for m in prometheus_client.REGISTRY.collect()}
    one, two = CollectorRegistry(), CollectorRegistry()
    a, b = Metrics(one), Metrics(two)
    a.events_processed_total.labels(topic="orders").inc()
    assert one.get_sample_value("hanzo_events_processed_total", {"topic": "orders"}) == 1.0
    assert two.get_sample_value("hanzo_events_processed_total", {"topic": "orders"}) is None
    assert b.registry is two
    assert {m.name for m in prometheus_client.REGISTRY.collect()} == before
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(one)


def test_exposition_names_and_units(metrics):
    metrics.events_processed_total.labels(topic="orders").inc(2)
    metrics.scoring_latency_seconds.labels(model="churn").observe(0.0007)
    metrics.processing_latency_seconds.labels(stage="features").observe(0.002)
    metrics.feature_freshness_seconds.labels(entity="customer").set(12)
    metrics.worker_up.set(1)
    text = generate_latest(metrics.registry).decode()
    assert 'hanzo_events_processed_total{topic="orders"} 2.0' in text
    assert 'hanzo_scoring_latency_seconds_bucket{le="0.00075",model="churn"} 1.0' in text
    assert 'hanzo_scoring_latency_seconds_bucket{le="0.0005",model="churn"} 0.0' in text
    assert 'hanzo_feature_freshness_seconds{entity="customer"} 12.0' in text
    assert "hanzo_worker_up 1.0" in text
    seen = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    assert seen <= metrics.exposed_names()
    for doc in metrics.describe():
        assert doc.name.startswith("hanzo_")
        unitless = doc.name.endswith(("_info", "_up", "_metric", "_statistic", "_p_value", "_active"))
        assert unitless or doc.name.endswith(("_total", "_seconds", "_messages")), doc.name


def test_scoring_latency_buckets_cover_50us_to_1s_finely_below_10ms():
    assert SCORING_LATENCY_BUCKETS[0] == 0.00005
    assert SCORING_LATENCY_BUCKETS[-1] == 1.0
    assert list(SCORING_LATENCY_BUCKETS) == sorted(SCORING_LATENCY_BUCKETS)
    assert 0.01 in SCORING_LATENCY_BUCKETS  # the alert's p99 threshold is a bucket bound
    assert sum(b < 0.01 for b in SCORING_LATENCY_BUCKETS) >= 10


def test_set_model_version_keeps_one_series_per_alias(metrics):
    metrics.set_model_version("churn", alias="production", version="1")
    metrics.set_model_version("churn", alias="staging", version="2")
    metrics.set_model_version("churn", alias="production", version="2")
    reg = metrics.registry
    info = "hanzo_model_version_info"
    assert reg.get_sample_value(info, {"model": "churn", "alias": "production", "version": "1"}) is None
    assert reg.get_sample_value(info, {"model": "churn", "alias": "production", "version": "2"}) == 1.0
    assert reg.get_sample_value(info, {"model": "churn", "alias": "staging", "version": "2"}) == 1.0


def test_serve_metrics_binds_loopback_serves_and_stops(metrics):
    metrics.worker_up.set(1)
    server = serve_metrics(metrics.registry, port=0)
    try:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        assert "hanzo_worker_up 1.0" in body
    finally:
        server.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2)
