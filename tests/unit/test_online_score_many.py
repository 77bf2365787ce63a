"""OnlineLearner.score_many: River's scores to 1e-12, the same floats for any batch size."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest
from river import compose, linear_model, preprocessing, tree

from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.online import OnlineLearner, _linear_plan
from hanzo.ml.learners.spec import PipelineSpec

METHODS = ("card", "paypal", "bank_transfer", "gift_card", "crypto")


def _x(rng: random.Random, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    return {
        "order_total": rng.lognormvariate(4, 1),
        "orders_1h": float(rng.randint(0, 3)),
        "orders_24h": float(rng.randint(0, 9)),
        "spend_24h": rng.uniform(0, 2000),
        "mean_order_value_30d": rng.uniform(0, 500),
        "lifetime_spend": rng.uniform(0, 1e5),
        "seconds_since_last_order": rng.choice([0.0, rng.uniform(0, 1e6)]),
        "account_age_days": rng.uniform(-1, 2000),
        "country_mismatch": float(rng.random() < 0.1),
        "payment_method": rng.choice(methods),
    }


def _trained_fraud_learner(n: int, seed: int = 0) -> OnlineLearner:
    learner = OnlineLearner("fraud_detection", build_model(PipelineSpec.shipped("fraud_detection")))
    rng = random.Random(seed)
    for i in range(n):
        x = _x(rng, METHODS[:3])  # gift_card and crypto are never learned: unseen categories at scoring
        y = rng.random() < 0.05 + 0.5 * x["country_mismatch"] + 0.2 * (x["payment_method"] == "paypal")
        learner.learn_label(f"l{i}", x, float(y), event_time_ms=1_700_000_000_000 + i)
    return learner


def test_the_shipped_fraud_model_takes_the_batch_path() -> None:
    assert _linear_plan(build_model(PipelineSpec.shipped("fraud_detection"))) is not None
    assert _linear_plan(preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier()) is None


@pytest.mark.parametrize("trained", [0, 1, 50, 2000])
def test_batch_scores_equal_river_and_do_not_depend_on_the_batch(trained: int) -> None:
    learner = _trained_fraud_learner(trained)
    rng = random.Random(1)
    xs = [_x(rng) for _ in range(1000)]
    xs.append({**xs[0], "payment_method": 0.0})  # an imputed categorical
    batch = learner.score_many(xs)
    river = [learner.model.predict_proba_one(x)[True] for x in xs]
    assert all(isinstance(s, float) for s in batch)
    assert max(abs(a - b) for a, b in zip(batch, river, strict=True)) <= 1e-12
    for size in (1, 7, 333):
        chunks = [learner.score_many(xs[i : i + size]) for i in range(0, len(xs), size)]
        assert [s for chunk in chunks for s in chunk] == batch
    if trained >= 50:
        assert len(set(batch)) > 100  # a real model: the scores vary


def test_saturated_and_non_finite_inputs_match_river() -> None:
    learner = _trained_fraud_learner(500)
    rng = random.Random(2)
    huge = {**_x(rng), "lifetime_spend": 1e300, "order_total": 1e300}
    nan = {**_x(rng), "order_total": math.nan}
    for x in (huge, nan):
        got = learner.score_many([_x(rng), x])[1]
        want = learner.score(x)
        assert got == want or (math.isnan(got) and math.isnan(want))


def test_other_models_score_one_at_a_time() -> None:
    model = compose.Select("a") | preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier()
    learner = OnlineLearner("m", model)
    rng = random.Random(3)
    for i in range(300):
        a = rng.random()
        learner.learn_label(f"l{i}", {"a": a}, float(a > 0.5), event_time_ms=1_700_000_000_000 + i)
    xs = [{"a": rng.random()} for _ in range(50)]
    assert learner.score_many(xs) == [learner.score(x) for x in xs]
    regression = OnlineLearner(
        "r", preprocessing.StandardScaler() | linear_model.LinearRegression(), task="regression"
    )
    assert regression.score_many(xs) == [regression.score(x) for x in xs]
    assert learner.score_many([]) == []


def test_the_batch_path_follows_a_new_model_and_is_not_pickled() -> None:
    learner = _trained_fraud_learner(200)
    x = _x(random.Random(4))
    first = learner.score_many([x])
    assert "_linear" in learner.__dict__
    restored = pickle.loads(pickle.dumps(learner))  # noqa: S301 - our own bytes
    assert "_linear" not in restored.__dict__
    assert restored.score_many([x]) == first
    learner.model = _trained_fraud_learner(300, seed=9).model
    swapped = learner.score_many([x])
    assert swapped != first
    assert abs(swapped[0] - learner.score(x)) <= 1e-12
