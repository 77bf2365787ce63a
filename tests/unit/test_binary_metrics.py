"""BinaryMetrics (the counts behind MetricSet's classification metrics) give River's values exactly.

Exactly: the same floats (``==``), not within a tolerance, cumulative and over a rolling window, whatever
the batches the examples come in, and a MetricSet pickled when it held River's metric objects carries on
with the same values.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from river import metrics, utils

from hanzo.ml.learners.binary_metrics import BINARY_METRICS, BinaryMetrics, log_loss
from hanzo.ml.learners.metrics import MetricSet

#: name -> (River class, kwargs, takes the probability or the class (probability >= 0.5))
RIVER: dict[str, tuple[Any, dict[str, Any], str]] = {
    "auc": (metrics.ROCAUC, {"n_thresholds": 20}, "proba"),
    "logloss": (metrics.LogLoss, {}, "proba"),
    "precision": (metrics.Precision, {}, "class"),
    "recall": (metrics.Recall, {}, "class"),
    "f1": (metrics.F1, {}, "class"),
    "accuracy": (metrics.Accuracy, {}, "class"),
}


def stream(seed: int, n: int) -> tuple[list[bool], list[float]]:
    """Labels and probabilities, with values on River's thresholds and on 0.5, 0 and 1."""
    rng = random.Random(seed)
    ys = [rng.random() < 0.3 for _ in range(n)]
    edges = [0.0, 1.0, 0.5, 1 / 19, 10 / 19, 1e-20, 1 - 1e-16]
    ps = [rng.choice(edges) if rng.random() < 0.2 else rng.random() for _ in range(n)]
    return ys, ps


def river_objects(names: list[str], window: int) -> tuple[dict[str, Any], dict[str, Any]]:
    cumulative = {n: RIVER[n][0](**RIVER[n][1]) for n in names}
    rolling = {n: utils.Rolling(RIVER[n][0], window_size=window, **RIVER[n][1]) for n in names}
    return cumulative, rolling


def feed_river(cumulative: dict[str, Any], rolling: dict[str, Any], ys: list[bool], ps: list[float]) -> None:
    for y, p in zip(ys, ps, strict=True):
        for name in cumulative:
            value = p if RIVER[name][2] == "proba" else p >= 0.5
            cumulative[name].update(y, value)
            rolling[name].update(y, value)


def river_values(cumulative: dict[str, Any], rolling: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        "cumulative": {n: float(m.get()) for n, m in cumulative.items()},
        "rolling": {n: float(m.get()) for n, m in rolling.items()},
    }


@pytest.mark.parametrize("window", [1, 2, 7, 1000, 5000])
@pytest.mark.parametrize("seed", range(4))
def test_values_equal_rivers_exactly_whatever_the_batches(window: int, seed: int) -> None:
    rng = random.Random(seed)
    names = rng.sample(list(BINARY_METRICS), rng.randint(1, len(BINARY_METRICS)))
    ys, ps = stream(seed, 3_500)
    ours = BinaryMetrics(names, window)
    i = 0
    while i < len(ys):
        size = rng.choice([1, 3, window - 1 or 1, window, window + 1, 2_000])
        ours.update_many(ys[i : i + size], ps[i : i + size])
        i += size
    cumulative, rolling = river_objects(names, window)
    feed_river(cumulative, rolling, ys, ps)
    assert ours.get() == river_values(cumulative, rolling)


def test_given_log_losses_are_used_and_equal_the_computed_ones() -> None:
    ys, ps = stream(9, 500)
    computed, given = BinaryMetrics(["logloss"], 50), BinaryMetrics(["logloss"], 50)
    computed.update_many(ys, ps)
    given.update_many(ys, ps, [log_loss(y, p) for y, p in zip(ys, ps, strict=True)])
    assert computed.get() == given.get()
    wrong = BinaryMetrics(["logloss"], 50)
    wrong.update_many(ys, ps, [0.0] * len(ys))
    assert wrong.get()["cumulative"]["logloss"] == 0.0  # the given ones are what counts


def test_metric_set_update_and_update_many_equal_rivers_exactly() -> None:
    ys, ps = stream(3, 2_500)
    names = list(BINARY_METRICS)
    one, many = MetricSet(names, rolling_window=300), MetricSet(names, rolling_window=300)
    for y, p in zip(ys, ps, strict=True):
        one.update(y, p)
    many.update_many(ys[:1000], ps[:1000])
    many.update_many(ys[1000:], ps[1000:])
    cumulative, rolling = river_objects(names, 300)
    feed_river(cumulative, rolling, ys, ps)
    assert one.get() == many.get() == river_values(cumulative, rolling)
    assert one.n == many.n == len(ys)


def test_a_metric_set_pickled_with_rivers_objects_carries_on_exactly() -> None:
    """The layout MetricSet pickled before: River metric objects under ``_cumulative`` and ``_rolling``."""
    names, window = ["auc", "logloss", "precision", "recall"], 100
    ys, ps = stream(5, 1_200)
    cumulative, rolling = river_objects(names, window)
    feed_river(cumulative, rolling, ys[:700], ps[:700])
    fresh = MetricSet(names, rolling_window=window)
    old = MetricSet.__new__(MetricSet)
    state = {k: v for k, v in fresh.__dict__.items() if k != "_binary"}
    state.update(_cumulative=cumulative, _rolling=rolling, n=700)
    old.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.get() == river_values(cumulative, rolling)
    restored.update_many(ys[700:], ps[700:])
    feed_river(cumulative, rolling, ys[700:], ps[700:])
    assert restored.get() == river_values(cumulative, rolling)
    assert restored.n == len(ys)


def test_a_regression_metric_set_pickled_before_still_updates() -> None:
    fresh = MetricSet(["mae", "rmse"], rolling_window=5)
    old = MetricSet.__new__(MetricSet)
    old.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_binary"})
    restored = pickle.loads(pickle.dumps(old))
    restored.update(3.0, 1.0)
    restored.update_many([2.0, 4.0], [2.0, 1.0])
    assert restored.get()["cumulative"]["mae"] == pytest.approx(5.0 / 3)
    assert restored.n == 3


@pytest.mark.parametrize("names", [["precision", "f1"], ["accuracy", "logloss"], ["auc"]])
def test_conversion_from_river_objects_for_any_subset(names: list[str]) -> None:
    ys, ps = stream(11, 900)
    cumulative, rolling = river_objects(names, 40)
    feed_river(cumulative, rolling, ys[:600], ps[:600])
    ours = BinaryMetrics.from_river(cumulative, rolling, 40)
    ours.update_many(ys[600:], ps[600:])
    feed_river(cumulative, rolling, ys[600:], ps[600:])
    assert ours.get() == river_values(cumulative, rolling)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot compute"):
        BinaryMetrics(["mae"], 10)
