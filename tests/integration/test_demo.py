"""``hanzo-ml demo`` for real, shorter: the simulator shifts the stream halfway, the worker's detectors alarm.

The demo itself waits for the condition (every label learned, an alarm after the drift seen in the monitor
status the worker publishes), within a bound; this test then checks what it saw and what it printed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams import demo

pytestmark = pytest.mark.integration

#: the inputs a feature shift moves (prices, shipping abroad); they never alarm before it in the demo's stream
SHIFTED = {("ks", "order_total"), ("chi2", "country_mismatch")}


@pytest.mark.timeout(240)
def test_the_demo_shows_a_drift_alarm_and_the_auc_around_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(record=True, width=80, color_system=None)
    monkeypatch.setattr(demo, "console", console)
    seen: dict[str, Any] = {}
    summary = demo._summary

    def keep_watch(m: dict[str, float], t: float, watch: demo.DriftWatch, *args: Any, **kw: Any) -> None:
        seen["watch"], seen["metrics"] = watch, m
        summary(m, t, watch, *args, **kw)

    monkeypatch.setattr(demo, "_summary", keep_watch)
    code = demo.run_demo(Settings(state_dir=tmp_path / "hanzo"), seconds=30, rate=300, seed=7)
    assert code == 0
    watch: demo.DriftWatch = seen["watch"]
    text = console.export_text()

    assert watch.at_order == 4500 and watch.injected_s is not None, text
    assert watch.gave_up_after_s is None, text
    rows = {(d, f): (before, after, first) for d, f, before, after, first in watch.by_detector()}
    fired = {key: rows[key] for key in SHIFTED if key in rows and rows[key][1]}
    assert fired, f"no alarm on {SHIFTED} after the drift: {rows}\n{text}"
    for (detector, feature), (before, _, first) in fired.items():
        assert before == 0, (detector, feature, rows)
        assert first is not None and first.position is not None and first.position > watch.at_order
        # its row in the summary's alarm table: none before the drift, some after
        assert re.search(rf"{detector}\s+│ {re.escape(feature)}\s+│\s+0 │\s+[1-9]", text), text
    assert int(seen["metrics"]["hanzo_labels_learned_total"]) == 9000  # the demo waited for every label
    assert watch.auc_before is not None and watch.auc_lowest_after is not None, watch.auc
    flat = " ".join(re.sub("[│┃]", " ", text).split())  # the summary's cells, unwrapped
    assert "injected at order 4,500" in flat and "drift alarms of the worker's monitor" in flat
    assert "new since the drift" in flat
    # the tables fit 80 columns; only the redis-cli command, printed whole to be copied, may be longer
    assert all(len(line) <= 80 for line in text.splitlines() if "redis-cli" not in line), text
    assert "…" not in text, text
