"""The HTML monitoring report, built from a real MonitorStatus of a real Monitor fed simulated data."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from hanzo.ml.monitor import Monitor, MonitorStatus
from hanzo.ml.monitor.report import build_report
from hanzo.ml.streams.cli import cli

SHIFT_AT = 3000
N = 6000

#: The status fields the report uses to place alarms on the time axis and draw the histogram.
HAS_REPORT_FIELDS = {"metric_trend_at", "prediction_histogram"} <= set(MonitorStatus.model_fields)


class Clock:
    """One second per call, from a fixed start: a deterministic, timezone-aware clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def drifting_status(model: str = "fraud_detection", predictions: list[float] | None = None) -> MonitorStatus:
    """Order totals and fraud scores shift up at SHIFT_AT and the fraud rule changes, so the loss rises."""
    rng = random.Random(7)
    monitor = Monitor(
        model,
        features={"order_total": "numeric", "payment_method": "categorical"},
        reference_size=500,
        window_size=500,
        check_every=250,
        trend_every=100,
        seed=0,
        clock=Clock(),
    )
    for i in range(N):
        total = rng.lognormvariate(4.0 if i < SHIFT_AT else 4.6, 0.5)
        p = min(0.99, total / 400)
        fraud = rng.random() < (p if i < SHIFT_AT else 0.05)
        method = rng.choice(["card", "card", "paypal", "gift_card"])
        monitor.observe({"order_total": total, "payment_method": method}, y_pred=p, y_true=fraud)
        if predictions is not None:
            predictions.append(p)
    return monitor.status()


@pytest.fixture(scope="module")
def status() -> MonitorStatus:
    return drifting_status()


def test_report_is_self_contained_html(status):
    page = build_report(status)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    for external in ("http://", "https://", "src=", "href=", "@import", "url("):
        assert external not in page, external
    assert page.count("<svg") == 1 + HAS_REPORT_FIELDS


def test_metric_chart_draws_every_trend_point(status):
    assert len(status.metric_trend) == min(N // 100, 60)
    page = build_report(status)
    points = re.search(r'<polyline class="metric" points="([^"]+)"', page)
    assert points is not None
    xy = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(xy) == len(status.metric_trend)
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    # higher metric values are drawn higher (smaller y)
    hi, lo = (
        max(range(len(xy)), key=status.metric_trend.__getitem__),
        min(range(len(xy)), key=status.metric_trend.__getitem__),
    )
    assert xy[hi][1] < xy[lo][1]
    assert f"{status.metric_value:.4g}" in page


def test_alarms_and_drift_tests_are_listed(status):
    kinds = {(a.kind, a.feature) for a in status.recent_alarms}
    assert ("feature", "order_total") in kinds
    page = build_report(status)
    assert page.count('<tr class="alarm-row">') == len(status.recent_alarms)
    for feature in ("order_total", "payment_method", "(prediction)", "(loss)"):
        assert f"<td>{feature}</td>" in page
    assert "DRIFT" in page or not any(status.drift_active.values())


def test_text_is_escaped():
    page = build_report(drifting_status(model="fraud<b>&co"))
    assert "fraud&lt;b&gt;&amp;co" in page
    assert "fraud<b>" not in page


def test_a_status_without_labels_still_renders(status):
    empty = status.model_copy(update={"metric_trend": [], "metric_value": None, "recent_alarms": []})
    page = build_report(empty)
    assert "not enough labelled examples" in page
    assert "no drift alarm" in page


@pytest.mark.skipif(not HAS_REPORT_FIELDS, reason="MonitorStatus lacks metric_trend_at/prediction_histogram")
def test_alarms_are_marked_on_the_metric_chart_at_their_time(status):
    page = build_report(status)
    start, end = status.metric_trend_at[0], status.metric_trend_at[-1]
    inside = [a for a in status.recent_alarms if start <= a.at <= end]
    assert inside, "the shift at SHIFT_AT must raise alarms inside the trend's time range"
    lines = re.findall(r'<line class="alarm" x1="([0-9.]+)"', page)
    assert len(lines) == len(inside)
    points = re.search(r'<polyline class="metric" points="([^"]+)"', page)
    assert points is not None
    xs = [float(p.split(",")[0]) for p in points.group(1).split()]
    assert all(xs[0] <= float(x) <= xs[-1] for x in lines)


@pytest.mark.skipif(not HAS_REPORT_FIELDS, reason="MonitorStatus lacks metric_trend_at/prediction_histogram")
def test_prediction_histogram_shows_the_recent_predictions():
    predictions: list[float] = []
    status = drifting_status(predictions=predictions)
    histogram = status.prediction_histogram
    assert histogram is not None and len(histogram.edges) == 21
    page = build_report(status)
    assert page.count('class="bar reference"') == 20 and page.count('class="bar recent"') == 20

    def mean(counts):
        mids = [(a + b) / 2 for a, b in zip(histogram.edges, histogram.edges[1:], strict=False)]
        return sum(m * c for m, c in zip(mids, counts, strict=True)) / sum(counts)

    assert sum(histogram.recent) == 500  # the prediction detector's window
    recent = predictions[-500:]
    assert mean(histogram.recent) == pytest.approx(sum(recent) / len(recent), abs=0.025)
    before = predictions[SHIFT_AT - 500 : SHIFT_AT]
    assert mean(histogram.recent) > sum(before) / len(before) + 0.05  # the shift is visible


def test_report_verb_parses():
    report = cli.commands["report"]
    ctx = report.make_context("report", ["fraud_detection", "--out", "r.html"])
    assert ctx.params["model"] == "fraud_detection" and str(ctx.params["out"]) == "r.html"
