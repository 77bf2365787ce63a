"""bench.quality on small seeded streams: every family beats its baseline.

The bandit needs about 20,000 visits before it earns more than the best fixed price in hindsight (a price
chosen after seeing every visitor), so its stream is as long here as in the benchmark.
"""

import math

import pytest

from bench import quality

PIPELINES = ("demand_forecasting", "recommendations", "price_optimization", "search_ranking",
             "fraud_detection", "churn_prediction")


def test_every_shipped_family_is_measured() -> None:
    assert tuple(quality.FAMILIES) == PIPELINES


@pytest.mark.parametrize("name", PIPELINES)
def test_family_beats_its_baseline(name: str) -> None:
    row = quality.FAMILIES[name](quality.SEED, quality.SMALL)
    assert set(row) >= {"metric", "model", "baseline", "baseline_name", "beats_baseline"}
    assert math.isfinite(row["model"]) and math.isfinite(row["baseline"])
    assert row["beats_baseline"] is True, row
    if name == "price_optimization":
        assert row["beats_random"] is True


def test_exact_auc() -> None:
    auc = quality._AUC()
    for y, s in [(True, 0.9), (False, 0.1), (True, 0.4), (False, 0.4), (False, 5.0)]:
        auc.update(y, s)
    # pairs (pos, neg): 0.9 beats 0.1 and 0.4, loses to 5.0; 0.4 beats 0.1, ties 0.4, loses to 5.0
    assert auc.get() == pytest.approx((2 + 1 + 0.5) / 6)
