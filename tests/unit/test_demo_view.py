"""The demo's live view and summary tables: what a drift looks like in them, and that they fit 80 columns.

The drift story is told by a real :class:`Monitor` fed a stream whose ``seconds_since_last_order`` changes at
order 500 and whose ``order_total`` shifts at order 1,000; the demo's DriftWatch reads its statuses as the
demo reads them from Redis.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest
from rich.console import Console
from rich.table import Table

from hanzo.ml.monitor import Monitor
from hanzo.ml.streams import demo

START = 1_800_000_000.0  # wall-clock seconds of the demo's start
CHANGE_AT = 1000  # the first order after the change (0-based)
ORDERS = 2500


def _auc_key(window: str) -> str:
    return f"hanzo_model_metric{{metric=auc,model=fraud_detection,window={window}}}"


def _metrics(auc_rolling: float) -> dict[str, float]:
    return {
        "hanzo_events_processed_total": 1_234_567,
        "hanzo_labels_learned_total": 123_456,  # the rolling window is full
        "hanzo_consumer_lag_messages": 12_345,
        "hanzo_dead_letters_total": 0,
        _auc_key("cumulative"): 0.884,
        _auc_key("rolling"): auc_rolling,
    }


@pytest.fixture(scope="module")
def watch() -> demo.DriftWatch:
    """A DriftWatch that followed a real Monitor: a change at order 500 and the drift at order 1,000."""
    now = {"t": START}
    mon = Monitor(
        "fraud_detection",
        features={"order_total": "numeric", "seconds_since_last_order": "numeric"},
        reference_size=300,
        window_size=300,
        check_every=100,
        seed=0,
        clock=lambda: datetime.fromtimestamp(now["t"], UTC),
    )
    w = demo.DriftWatch(started_wall=START, at_order=CHANGE_AT, what="prices up 50 %")
    rng = random.Random(1)
    for i in range(ORDERS):
        now["t"] = START + i / 100  # 100 orders a second
        if i == CHANGE_AT:
            w.injected_s = i / 100
        total = rng.gauss(60 if i < CHANGE_AT else 90, 10)
        p = 0.1 if i < CHANGE_AT else 0.3
        gap = rng.expovariate(1 / (600 if i < 500 else 3600))  # a change before the drift, too
        mon.observe({"order_total": total, "seconds_since_last_order": gap}, p)
        if i % 100 == 99:  # the worker publishes now and then; the demo reads what it published
            auc = 0.9 if i < CHANGE_AT + 300 else 0.7 if i < CHANGE_AT + 800 else 0.85
            w.observe(now["t"] - START, _metrics(auc), mon.status())
    return w


def test_the_watch_tells_alarms_before_the_drift_from_alarms_after(watch: demo.DriftWatch) -> None:
    rows = {(d, f): (before, after, first) for d, f, before, after, first in watch.by_detector()}
    before, after, first = rows[("ks", "order_total")]
    assert (before, after) == (0, 1)
    assert first is not None and first.position is not None and first.position > CHANGE_AT
    assert first.at_s >= watch.injected_s  # type: ignore[operator]
    assert all(a.position is None or a.position > CHANGE_AT for a in watch.alarms_after)
    assert all(not a.after_drift for a in watch.alarms if a.position is not None and a.position <= CHANGE_AT)
    assert rows[("ks", "seconds_since_last_order")][0] >= 1  # the change at order 500: before the drift
    assert watch.auc_before == (pytest.approx(9.99), 0.9)
    assert watch.auc_lowest_after is not None and watch.auc_lowest_after[1] == 0.7
    assert "injected at order 1,000, 10s" in watch.describe()


def _tables(watch: demo.DriftWatch) -> list[Table]:
    m = _metrics(0.85)
    return [
        demo._stream_table(1234.0, 1_234_567, m, 12_345.0),
        demo._model_table(watch, m),
        demo._model_table(watch, m, final=True),
        demo._alarm_table(watch),
    ]


def _header_words(tables: list[Table]) -> set[str]:
    return {word for t in tables for column in t.columns for word in str(column.header).split()}


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_view_and_the_summary_tables_fit_the_terminal(watch: demo.DriftWatch, width: int) -> None:
    console = Console(record=True, width=width, color_system=None)
    console.print(demo._progress_view(1234.0, 1_234_567, _metrics(0.85), 12_345.0, watch))
    for table in _tables(watch)[2:]:  # what the summary adds below its own table
        console.print(table)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text, text
    # every header word is there whole: not wrapped inside, not cut with an ellipsis
    for word in _header_words(_tables(watch)):
        assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", text), (word, text)
    assert "order_total" in text and "injected at order 1,000" in text
    assert "0.900 at 10s" in text and "0.700 at" in text  # the AUC before the drift and at its lowest
