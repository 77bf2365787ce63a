"""MetricSet: the same numbers as River's own metrics, cumulative and rolling, and it pickles."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
from river import datasets, linear_model, metrics, preprocessing, utils

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.metrics import (
    CLASSIFICATION_METRICS,
    FAMILY_METRICS,
    METRICS,
    REGRESSION_METRICS,
    MetricSet,
    lower_is_better,
    metric_info,
)


def progressive_predictions(task: str) -> list[tuple[Any, float]]:
    """Predict-then-learn over a River dataset: (y_true, prediction) pairs."""
    if task == "classification":
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        pairs = []
        for x, y in datasets.Phishing():
            pairs.append((y, model.predict_proba_one(x).get(True, 0.0)))
            model.learn_one(x, y)
        return pairs
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    pairs = []
    for x, y in datasets.TrumpApproval():
        pairs.append((y, model.predict_one(x)))
        model.learn_one(x, y)
    return pairs


CLASSIFICATION = progressive_predictions("classification")
REGRESSION = progressive_predictions("regression")


def by_hand(pairs: list[tuple[Any, float]], window: int | None) -> dict[str, float]:
    """River's own metrics, fed directly (probabilities to AUC and log loss, classes to the rest)."""
    if pairs is CLASSIFICATION:
        made: dict[str, Any] = {
            "auc": (metrics.ROCAUC, {"n_thresholds": 20}, "proba"),
            "logloss": (metrics.LogLoss, {}, "proba"),
            "precision": (metrics.Precision, {}, "class"),
            "recall": (metrics.Recall, {}, "class"),
            "f1": (metrics.F1, {}, "class"),
            "accuracy": (metrics.Accuracy, {}, "class"),
        }
    else:
        made = {
            "mae": (metrics.MAE, {}, "value"),
            "rmse": (metrics.RMSE, {}, "value"),
            "r2": (metrics.R2, {}, "value"),
            "mape": (metrics.MAPE, {}, "value"),
        }
    values = {}
    for name, (cls, kwargs, takes) in made.items():
        metric = cls(**kwargs) if window is None else utils.Rolling(cls, window_size=window, **kwargs)
        for y, p in pairs:
            metric.update(y, p >= 0.5 if takes == "class" else p)
        values[name] = metric.get()
    return values


@pytest.mark.parametrize(
    ("names", "pairs"),
    [(CLASSIFICATION_METRICS, CLASSIFICATION), (REGRESSION_METRICS, REGRESSION)],
    ids=["classification", "regression"],
)
def test_metric_set_equals_rivers_own_metrics(names: tuple[str, ...], pairs: list[tuple[Any, float]]) -> None:
    window = 200
    ms = MetricSet(names, rolling_window=window)
    for y, p in pairs:
        ms.update(y, p)
    values = ms.get()
    assert values["cumulative"] == pytest.approx(by_hand(pairs, None), rel=1e-12)
    assert values["rolling"] == pytest.approx(by_hand(pairs, window), rel=1e-12)
    assert ms.n == len(pairs)
    assert all(math.isfinite(v) for section in values.values() for v in section.values())


def test_sanity_of_the_numbers() -> None:
    ms = MetricSet(["auc", "accuracy"])
    for y, p in CLASSIFICATION:
        ms.update(y, p)
    cumulative = ms.get()["cumulative"]
    assert 0.9 < cumulative["auc"] <= 1.0  # a scaled logistic regression separates Phishing well
    assert 0.8 < cumulative["accuracy"] <= 1.0


def test_rolling_equals_cumulative_until_the_window_fills_then_differs() -> None:
    ms = MetricSet(["accuracy", "logloss"], rolling_window=100)
    for y, p in CLASSIFICATION[:100]:
        ms.update(y, p)
    first = ms.get()
    assert first["rolling"] == pytest.approx(first["cumulative"])
    for y, p in CLASSIFICATION[100:]:
        ms.update(y, p)
    later = ms.get()
    assert later["rolling"]["logloss"] != pytest.approx(later["cumulative"]["logloss"])
    assert later["rolling"]["accuracy"] != pytest.approx(later["cumulative"]["accuracy"])
    # the rolling value is the cumulative value of the last 100 examples alone
    tail = MetricSet(["accuracy", "logloss"])
    for y, p in CLASSIFICATION[-100:]:
        tail.update(y, p)
    assert later["rolling"] == pytest.approx(tail.get()["cumulative"])


def test_integer_labels_count_like_booleans() -> None:
    as_bool, as_int = MetricSet(CLASSIFICATION_METRICS), MetricSet(CLASSIFICATION_METRICS)
    for y, p in CLASSIFICATION[:300]:
        as_bool.update(y, p)
        as_int.update(int(y), p)
    assert as_bool.get() == as_int.get()


def test_pickle_round_trip_continues_identically() -> None:
    ms = MetricSet(["auc", "logloss", "f1"], rolling_window=50)
    for y, p in CLASSIFICATION[:400]:
        ms.update(y, p)
    restored = pickle.loads(pickle.dumps(ms))
    assert restored.get() == ms.get()
    for y, p in CLASSIFICATION[400:600]:
        ms.update(y, p)
        restored.update(y, p)
    assert restored.get() == ms.get()
    assert restored.n == ms.n == 600


def test_lower_is_better() -> None:
    assert {name for name in METRICS if lower_is_better(name)} == {"logloss", "mae", "rmse", "mape"}
    assert MetricSet(["mae"]).lower_is_better("mae")
    with pytest.raises(ConfigError, match="'aucc' is not a known metric.*did you mean 'auc'"):
        lower_is_better("aucc")


def test_bad_metric_sets_are_rejected() -> None:
    with pytest.raises(ConfigError, match="mix classification and regression"):
        MetricSet(["auc", "mae"])
    with pytest.raises(ConfigError, match="did you mean 'precision'"):
        MetricSet(["precison"])
    with pytest.raises(ConfigError, match="at least one metric"):
        MetricSet([])
    with pytest.raises(ConfigError, match="repeat a metric"):
        MetricSet(["auc", "auc"])
    with pytest.raises(ConfigError, match="rolling_window=0"):
        MetricSet(["auc"], rolling_window=0)


def test_none_predictions_are_not_scored() -> None:
    ms = MetricSet(["mae"])
    ms.update(3.0, None)
    ms.update(3.0, 1.0)
    assert (ms.n, ms.n_unscored) == (1, 1)
    assert ms.get()["cumulative"]["mae"] == 2.0


def test_missed_thresholds() -> None:
    ms = MetricSet(["auc", "logloss"])
    for y, p in CLASSIFICATION:
        ms.update(y, p)
    auc, logloss = ms.get()["cumulative"]["auc"], ms.get()["cumulative"]["logloss"]
    assert ms.missed_thresholds({"auc": 0.85, "logloss": 1.0}) == {}
    assert ms.missed_thresholds({"auc": 0.99, "logloss": 0.01}) == {
        "auc": (auc, 0.99),
        "logloss": (logloss, 0.01),
    }
    with pytest.raises(ConfigError, match="threshold on 'recall'"):
        ms.missed_thresholds({"recall": 0.5})


def test_metric_info_table() -> None:
    assert metric_info("auc").make().n_thresholds == 20
    assert set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) | set(FAMILY_METRICS) == set(METRICS)
    assert set(METRICS) == {
        "auc",
        "precision",
        "recall",
        "f1",
        "logloss",
        "accuracy",
        "mae",
        "rmse",
        "r2",
        "mape",
        "hit_rate_at_10",
        "mean_reward",
        "cumulative_revenue",
    }
