"""A model's monitoring status as one self-contained HTML page (inline SVG charts, no script, no network).

:func:`build_report` turns a :class:`monitor.MonitorStatus` (what the worker publishes to Redis) into HTML:
the rolling metric over time with the drift alarms marked on it, the distribution of the predictions (the
detector's reference sample against the recent window), the drift tests per feature and the recent alarms.
``hanzo-ml report MODEL`` (in :mod:`hanzo.ml.streams.cli.monitor`) reads the status and writes the file.

The metric chart uses the times of the trend points (``MonitorStatus.metric_trend_at``) to place alarms on
it, and the histogram uses ``MonitorStatus.prediction_histogram``. A status written by a worker whose
:class:`monitor.Monitor` does not publish those fields still renders: the chart is drawn over the trend's
index with the alarms listed below it, and the histogram section says the worker does not publish it.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hanzo.ml.monitor.status import MonitorStatus

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 720, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 60, 20, 20, 40

_KIND_COLOURS = {"feature": "#d97706", "prediction": "#7c3aed", "loss": "#dc2626"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#111827;max-width:60rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d1d5db;padding:.25rem .6rem;text-align:left}
th{background:#f3f4f6}.num{text-align:right;font-variant-numeric:tabular-nums}
.drift{color:#b91c1c;font-weight:600}.ok{color:#15803d}.note{color:#6b7280;font-size:.9rem}
svg text{font-size:11px;fill:#374151}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def _axes(x_labels: Sequence[tuple[float, str]], y_low: float, y_high: float, y_label: str) -> list[str]:
    """Frame, y grid with labels, x tick labels at the given pixel positions."""
    bottom, right = HEIGHT - PAD_BOTTOM, WIDTH - PAD_RIGHT
    parts = [
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{right - PAD_LEFT}" height="{bottom - PAD_TOP}" '
        'fill="#ffffff" stroke="#9ca3af"/>'
    ]
    for value in _ticks(y_low, y_high):
        y = _y(value, y_low, y_high)
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(_fmt(value, ".3g"))}</text>'
        )
    for x, label in x_labels:
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_e(label)}</text>')
    middle = (PAD_TOP + bottom) / 2
    parts.append(
        f'<text x="14" y="{middle:.1f}" transform="rotate(-90 14 {middle:.1f})" '
        f'text-anchor="middle">{_e(y_label)}</text>'
    )
    return parts


def _y(value: float, low: float, high: float) -> float:
    span = high - low or 1.0
    return HEIGHT - PAD_BOTTOM - (value - low) / span * (HEIGHT - PAD_BOTTOM - PAD_TOP)


def _x(position: float, low: float, high: float) -> float:
    span = high - low or 1.0
    return PAD_LEFT + (position - low) / span * (WIDTH - PAD_LEFT - PAD_RIGHT)


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}"><title>{_e(title)}</title>' + "".join(parts) + "</svg>"
    )


def _padded_range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 0.1
    return low - pad, high + pad


def metric_chart(status: MonitorStatus) -> str:
    """SVG line chart of the rolling metric, with a vertical mark at every alarm inside the time range."""
    values = [v for v in status.metric_trend if math.isfinite(v)]
    if len(values) < 2:
        return '<p class="note">not enough labelled examples yet for a trend</p>'
    times: list[datetime] = list(getattr(status, "metric_trend_at", None) or [])
    timed = len(times) == len(status.metric_trend)
    if timed:
        xs = [t.timestamp() for t in times]
    else:
        xs = [float(i) for i in range(len(status.metric_trend))]
    x_low, x_high = xs[0], xs[-1]
    y_low, y_high = _padded_range(values)
    x_labels = []
    for position in _ticks(x_low, x_high, 4):
        if timed:
            label = datetime.fromtimestamp(position, tz=times[0].tzinfo).strftime("%m-%d %H:%M:%S")
        else:
            label = f"point {position:.0f}"
        x_labels.append((_x(position, x_low, x_high), label))
    parts = _axes(x_labels, y_low, y_high, f"{status.metric_name} (rolling)")
    for alarm in status.recent_alarms if timed else []:
        at = alarm.at.timestamp()
        if not x_low <= at <= x_high:
            continue
        x = _x(at, x_low, x_high)
        colour = _KIND_COLOURS.get(alarm.kind, "#dc2626")
        parts.append(
            f'<line class="alarm" x1="{x:.1f}" y1="{PAD_TOP}" x2="{x:.1f}" y2="{HEIGHT - PAD_BOTTOM}" '
            f'stroke="{colour}" stroke-dasharray="4 3"><title>{_e(alarm.kind)} drift: '
            f"{_e(alarm.detector)} on {_e(alarm.feature)} at "
            f"{_e(alarm.at.isoformat(timespec='seconds'))}</title></line>"
        )
    points = " ".join(
        f"{_x(x, x_low, x_high):.1f},{_y(v, y_low, y_high):.1f}"
        for x, v in zip(xs, status.metric_trend, strict=True)
        if math.isfinite(v)
    )
    parts.append(
        f'<polyline class="metric" points="{points}" fill="none" stroke="#2563eb" stroke-width="2"/>'
    )
    return _svg(parts, f"rolling {status.metric_name} over time")


def prediction_chart(status: MonitorStatus) -> str:
    """SVG histogram of the predictions: the reference sample (grey) against the recent window (blue)."""
    histogram: Any = getattr(status, "prediction_histogram", None)
    if histogram is None:
        return (
            '<p class="note">this worker does not publish the prediction distribution '
            "(MonitorStatus.prediction_histogram)</p>"
        )
    edges: list[float] = list(histogram.edges)
    series = {"reference": list(histogram.reference), "recent": list(histogram.recent)}
    totals = {name: sum(counts) or 1 for name, counts in series.items()}
    shares = {name: [c / totals[name] for c in counts] for name, counts in series.items()}
    top = max((max(s, default=0.0) for s in shares.values()), default=0.0) or 1.0
    x_low, x_high = edges[0], edges[-1]
    x_labels = [(_x(v, x_low, x_high), _fmt(v, ".3g")) for v in _ticks(x_low, x_high, 5)]
    parts = _axes(x_labels, 0.0, top * 1.1, "share of predictions")
    colours = {"reference": "#9ca3af", "recent": "#2563eb"}
    for offset, name in enumerate(("reference", "recent")):
        for i, share in enumerate(shares[name]):
            left, right = _x(edges[i], x_low, x_high), _x(edges[i + 1], x_low, x_high)
            width = (right - left) / 2
            y = _y(share, 0.0, top * 1.1)
            parts.append(
                f'<rect class="bar {name}" x="{left + offset * width:.1f}" y="{y:.1f}" '
                f'width="{max(width - 1, 0.5):.1f}" '
                f'height="{HEIGHT - PAD_BOTTOM - y:.1f}" fill="{colours[name]}">'
                f"<title>{name} [{edges[i]:.3g}, {edges[i + 1]:.3g}): {share:.1%}</title></rect>"
            )
    legend = " ".join(
        f'<tspan fill="{colours[n]}">■</tspan> {n} ({sum(series[n])})' for n in ("reference", "recent")
    )
    parts.append(f'<text x="{WIDTH - PAD_RIGHT - 4}" y="{PAD_TOP + 14}" text-anchor="end">{legend}</text>')
    return _svg(parts, "distribution of the predictions")


def _state(drifting: bool) -> str:
    return '<span class="drift">DRIFT</span>' if drifting else '<span class="ok">ok</span>'


def _drift_table(status: MonitorStatus) -> str:
    rows = [
        "<tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>p adj.</th>"
        "<th>alarms</th><th>last alarm at</th><th>state</th></tr>"
    ]
    for f in status.features:
        rows.append(
            f"<tr><td>{_e(f.feature)}</td><td>{_e(f.test)}</td><td class=num>{_fmt(f.statistic)}</td>"
            f"<td class=num>{_fmt(f.p_value)}</td><td class=num>{_fmt(f.p_value_adjusted)}</td>"
            f"<td class=num>{f.n_alarms}</td><td class=num>{_e(f.last_alarm_at or '-')}</td>"
            f"<td>{_state(f.drifting)}</td></tr>"
        )
    for name, d in (
        ("(prediction)", status.prediction_ks),
        ("(prediction)", status.prediction_adwin),
        ("(loss)", status.loss_adwin),
    ):
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(d.detector)}</td><td class=num>{_fmt(d.statistic)}</td>"
            f"<td class=num>{_fmt(d.p_value)}</td><td class=num>-</td><td class=num>{d.n_alarms}</td>"
            f"<td class=num>{_e(d.last_alarm_at or '-')}</td><td>{_state(d.drifting)}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _alarm_table(status: MonitorStatus) -> str:
    if not status.recent_alarms:
        return '<p class="note">no drift alarm</p>'
    rows = ["<tr><th>time (UTC offset as stored)</th><th>kind</th><th>detector</th><th>feature</th></tr>"]
    for alarm in reversed(status.recent_alarms):
        rows.append(
            f'<tr class="alarm-row"><td>{_e(alarm.at.isoformat(timespec="seconds"))}</td>'
            f'<td style="color:{_KIND_COLOURS.get(alarm.kind, "#dc2626")}">{_e(alarm.kind)}</td>'
            f"<td>{_e(alarm.detector)}</td><td>{_e(alarm.feature)}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def build_report(status: MonitorStatus) -> str:
    """Render ``status`` as a self-contained HTML page (inline CSS and SVG; no script, no external link).

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import Monitor
    >>> rng = random.Random(0)
    >>> mon = Monitor("fraud_detection", features={"order_total": "numeric"},
    ...               reference_size=200, window_size=200, check_every=100, trend_every=50)
    >>> for i in range(1000):
    ...     total = rng.gauss(50 if i < 500 else 80, 10)
    ...     mon.observe({"order_total": total}, y_pred=total / 100, y_true=rng.random() < total / 100)
    >>> page = build_report(mon.status())
    >>> page.startswith("<!DOCTYPE html>"), "<script" in page, 'class="metric"' in page
    (True, False, True)
    """
    active = [kind for kind, on in status.drift_active.items() if on]
    summary = [
        ("updated", status.updated_at.isoformat(timespec="seconds")),
        ("observed / labelled", f"{status.n_observed:,} / {status.n_labelled:,}"),
        (f"{status.metric_name} (rolling)", _fmt(status.metric_value)),
        (
            "latency p50 / p99",
            f"{_fmt(status.latency_p50_s, '.3g')} s / {_fmt(status.latency_p99_s, '.3g')} s",
        ),
        ("drift active", ", ".join(active) if active else "none"),
        ("drift alarms (recent)", str(len(status.recent_alarms))),
    ]
    summary_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary)
    legend = " ".join(
        f'<span style="color:{colour}">┆ {kind}</span>' for kind, colour in _KIND_COLOURS.items()
    )
    title = f"hanzo-ml monitoring report: {status.model}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<table>{summary_rows}</table>"
        f"<h2>Rolling {_e(status.metric_name)} over time</h2>"
        f'<p class="note">drift alarms are marked: {legend}</p>'
        f"{metric_chart(status)}"
        "<h2>Prediction distribution</h2>"
        f"{prediction_chart(status)}"
        "<h2>Drift alarms</h2>"
        f"{_alarm_table(status)}"
        "<h2>Drift tests</h2>"
        f"{_drift_table(status)}"
        "</body></html>\n"
    )
