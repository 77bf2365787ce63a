"""Monitor: observe a seeded stream, report status and Prometheus metrics; publish/read through real Redis."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console
from river import metrics as river_metrics
from river import utils as river_utils

from hanzo.ml.config.errors import HanzoError, ValidationError
from hanzo.ml.config.settings import Settings
from hanzo.ml.monitor import Metrics, Monitor, MonitorStatus
from hanzo.ml.streams.cli import cli, run
from hanzo.ml.streams.cli.monitor import render_status

T0 = datetime(2024, 11, 29, 12, 0, tzinfo=UTC)


class FakeClock:
    """A settable clock (time is an input here, not a service)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


FEATURES = {"days_since_last_order": "numeric", "plan": "categorical"}


def small_monitor(**kwargs) -> Monitor:
    defaults = {
        "features": FEATURES,
        "reference_size": 300,
        "window_size": 300,
        "check_every": 100,
        "seed": 0,
    }
    return Monitor("churn_prediction", **(defaults | kwargs))


def drifting_stream(monitor: Monitor, clock: FakeClock, n: int = 3000, shift_at: int = 1500) -> None:
    """days_since_last_order shifts at ``shift_at``; plan does not; predictions follow days."""
    rng = random.Random(7)
    for i in range(n):
        clock.now = T0 + timedelta(seconds=i)
        days = rng.expovariate(1 / (30 if i < shift_at else 60))
        p = min(days / 100, 1.0)
        monitor.observe(
            {"days_since_last_order": days, "plan": rng.choice(["free", "pro"]), "customer_id": f"c{i}"},
            y_pred=p,
            y_true=float(rng.random() < p),
            latency_s=0.001 * (1 + i % 10),
        )


def test_status_reports_the_drifting_feature_prediction_drift_and_alarm_times():
    clock = FakeClock()
    mon = small_monitor(clock=clock)
    drifting_stream(mon, clock)
    status = mon.status()
    features = {f.feature: f for f in status.features}
    assert set(features) == {"days_since_last_order", "plan"}
    assert features["days_since_last_order"].n_alarms == 1
    assert features["days_since_last_order"].test == "ks"
    assert features["plan"].n_alarms == 0
    assert status.prediction_ks.n_alarms == 1
    kinds = {(a.kind, a.detector, a.feature) for a in status.recent_alarms}
    assert ("feature", "ks", "days_since_last_order") in kinds
    assert ("prediction", "ks", "(prediction)") in kinds
    for alarm in status.recent_alarms:
        assert T0 + timedelta(seconds=1500) <= alarm.at <= T0 + timedelta(seconds=2500)
        assert alarm.at.tzinfo is not None
    assert status.last_alarm == status.recent_alarms[-1]
    assert status.updated_at == clock.now
    assert status.n_observed == status.n_labelled == 3000


def test_without_declared_features_numbers_are_watched_and_strings_left_out():
    clock = FakeClock()
    mon = small_monitor(clock=clock, features=None)
    drifting_stream(mon, clock, n=500)
    # plan and customer_id are strings: an id must never become a tested category, so strings are declared.
    assert [f.feature for f in mon.status().features] == ["days_since_last_order"]


def test_latency_percentiles_and_metric_trend():
    clock = FakeClock()
    metric = river_utils.Rolling(river_metrics.ROCAUC, window_size=500)
    mon = small_monitor(clock=clock, metric=metric, metric_name="auc", trend_every=100, trend_points=10)
    drifting_stream(mon, clock, n=2000)
    status = mon.status()
    latencies = [0.001 * (1 + i % 10) for i in range(2000)]
    assert status.latency_p50_s == pytest.approx(float(np.percentile(latencies, 50)))
    assert status.latency_p99_s == pytest.approx(float(np.percentile(latencies, 99)))
    assert status.metric_name == "auc"
    assert len(status.metric_trend) == 10  # the last 10 of 20 recorded points
    assert status.metric_value is not None and 0.6 < status.metric_value <= 1.0  # predictions carry signal
    assert status.metric_trend[-1] == pytest.approx(status.metric_value)


def test_loss_increase_raises_a_loss_alarm_and_updates_metrics():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    mon = small_monitor(metrics=metrics, features={"x": "numeric"})
    rng = np.random.default_rng(0)
    for i in range(8000):
        loss = float(rng.exponential(0.2 if i < 4000 else 0.6))
        mon.observe({"x": float(rng.normal())}, y_pred=0.5, loss=loss)
    labels = {"model": "churn_prediction", "detector": "adwin", "feature": "(loss)"}
    assert registry.get_sample_value("hanzo_drift_alarms_total", labels) == 1.0
    status = mon.status()
    assert status.loss_adwin.n_alarms == 1
    assert status.loss_adwin.last_alarm_at is not None and 4000 < status.loss_adwin.last_alarm_at < 4500
    # x never drifts: its statistic and p-value are exported, and no feature drift is active.
    assert registry.get_sample_value(
        "hanzo_drift_p_value", {"model": "churn_prediction", "detector": "ks", "feature": "x"}
    ) == pytest.approx(status.features[0].p_value)
    assert (
        registry.get_sample_value("hanzo_drift_active", {"model": "churn_prediction", "kind": "feature"})
        == 0.0
    )


def test_feature_drift_updates_drift_counters_and_active_gauge():
    registry = CollectorRegistry()
    clock = FakeClock()
    mon = small_monitor(clock=clock, metrics=Metrics(registry))
    drifting_stream(mon, clock, n=1800)  # stops soon after the alarm, while the feature is still drifting
    model = "churn_prediction"
    assert (
        registry.get_sample_value(
            "hanzo_drift_alarms_total", {"model": model, "detector": "ks", "feature": "days_since_last_order"}
        )
        == 1.0
    )
    assert registry.get_sample_value("hanzo_drift_active", {"model": model, "kind": "feature"}) == 1.0
    assert registry.get_sample_value(
        "hanzo_model_metric", {"model": model, "metric": "mae", "window": "rolling"}
    ) == pytest.approx(mon.status().metric_trend[-1])


def test_status_json_round_trip_and_rendering():
    clock = FakeClock()
    mon = small_monitor(clock=clock)
    drifting_stream(mon, clock, n=1800)
    status = mon.status()
    assert MonitorStatus.model_validate_json(status.model_dump_json()) == status
    console = Console(record=True, width=140)
    console.print(render_status(status, now=status.updated_at + timedelta(seconds=5)))
    text = console.export_text()
    assert "churn_prediction" in text
    assert "days_since_last_order" in text and "DRIFT" in text
    assert "(loss)" in text and "5s ago" in text


def test_observe_rejects_a_non_numeric_prediction():
    with pytest.raises(ValidationError, match="y_pred='yes'"):
        small_monitor().observe({"x": 1.0}, y_pred="yes")  # type: ignore[arg-type]


def test_monitor_verb_is_registered():
    ctx = cli.commands["monitor"].make_context("monitor", ["churn_prediction", "--json"])
    assert ctx.params["model"] == "churn_prediction" and ctx.params["as_json"]


# --- through a real Redis ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_publish_and_read_status_through_redis(redis_client, key_prefix):
    clock = FakeClock()
    mon = small_monitor(clock=clock)
    drifting_stream(mon, clock, n=1800)
    key = mon.publish(redis_client, key_prefix=key_prefix, ttl_s=60)
    assert key == f"{key_prefix}mon:churn_prediction"
    assert 0 < redis_client.ttl(key) <= 60
    assert Monitor.read_status(redis_client, "churn_prediction", key_prefix=key_prefix) == mon.status()
    with pytest.raises(HanzoError, match=f"{key_prefix}mon:fraud_detection"):
        Monitor.read_status(redis_client, "fraud_detection", key_prefix=key_prefix)


@pytest.mark.integration
def test_monitor_cli_shows_a_published_status(redis_client, redis_url, key_prefix, capsys):
    clock = FakeClock()
    mon = small_monitor(clock=clock)
    drifting_stream(mon, clock, n=1800)
    mon.publish(redis_client, key_prefix=key_prefix)
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix)
    assert run(["monitor", "churn_prediction"], settings) == 0
    out = capsys.readouterr().out
    assert "days_since_last_order" in out and "DRIFT" in out
    assert run(["monitor", "churn_prediction", "--json"], settings) == 0
    assert MonitorStatus.model_validate_json(capsys.readouterr().out) == mon.status()
    with pytest.raises(HanzoError, match="no monitor status"):
        run(["monitor", "nope"], settings)
