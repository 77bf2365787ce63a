"""The model factory: every table entry builds one River pipeline that learns and predicts on River's data."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from typing import Any

import pytest
from river import compose, datasets, ensemble, linear_model, optim, tree

import hanzo.ml.learners.factory as factory
from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.factory import (
    MODEL_TABLE,
    build_estimator,
    build_model,
    check_hyperparameters,
    describe_model,
    resolve_river_class,
    supports_many,
)
from hanzo.ml.learners.spec import PipelineSpec

PHISHING = list(itertools.islice(datasets.Phishing(), 120))
TRUMP = list(itertools.islice(datasets.TrumpApproval(), 120))
SMALL = {  # small ensembles keep the test quick; SGT splits (and so changes) only after grace_period examples
    ("adaptive_random_forest", "classification"): {"n_estimators": 3},
    ("adaptive_random_forest", "regression"): {"n_estimators": 3},
    ("streaming_random_patches", "classification"): {"n_estimators": 3},
    ("streaming_random_patches", "regression"): {"n_estimators": 3},
    ("amf", "classification"): {"n_estimators": 3},
    ("amf", "regression"): {"n_estimators": 3},
    ("sgt", "classification"): {"grace_period": 20},
    ("sgt", "regression"): {"grace_period": 20},
    ("gradient_boosting", "classification"): {"n_estimators": 3, "max_depth": 4},
    ("gradient_boosting", "regression"): {"max_depth": 4, "grace_period": 20},
}


def spec_for(model: dict[str, Any], task: str = "classification", **data: Any) -> PipelineSpec:
    rows = PHISHING if task == "classification" else TRUMP
    return PipelineSpec.from_dict(
        {
            "name": "t",
            "version": "0.0.1",
            "data": {"source": "orders", "features": list(rows[0][0]), "label": "y", **data},
            "model": {"task": task, **model},
            "evaluation": {"metrics": ["auc"] if task == "classification" else ["mae"]},
        }
    )


CASES = [(name, task) for name, entry in MODEL_TABLE.items() for task in entry.tasks]


@pytest.mark.parametrize(("model_type", "task"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_every_table_entry_builds_learns_and_predicts(model_type: str, task: str) -> None:
    spec = spec_for({"type": model_type, "hyperparameters": SMALL.get((model_type, task), {})}, task)
    model = build_model(spec)
    fresh = build_model(spec)
    assert isinstance(model, compose.Pipeline)
    expected_path = MODEL_TABLE[model_type].path(task)  # type: ignore[arg-type]
    assert expected_path is not None
    assert isinstance(model[-1], resolve_river_class(expected_path))

    rows = PHISHING if task == "classification" else TRUMP
    train, test = rows[:100], rows[100:]
    for x, y in train:
        model.learn_one(x, y)
    changed = False
    for x, _ in test:
        if task == "classification":
            proba = model.predict_proba_one(x)
            assert set(proba) <= {True, False} and True in proba
            assert all(0.0 <= p <= 1.0 for p in proba.values())
            assert math.isclose(sum(proba.values()), 1.0, rel_tol=1e-6)
            changed |= proba != fresh.predict_proba_one(x)
        else:
            value = model.predict_one(x)
            assert isinstance(value, float) and math.isfinite(value)
            changed |= value != fresh.predict_one(x)
    assert changed, "learning changed no prediction"
    restored = pickle.loads(pickle.dumps(model))
    x = test[0][0]
    # sums over features may run in another order after unpickling (str hashing), so compare to 1e-9
    if task == "classification":
        assert restored.predict_proba_one(x) == pytest.approx(model.predict_proba_one(x), rel=1e-9)
    else:
        assert restored.predict_one(x) == pytest.approx(model.predict_one(x), rel=1e-9)


def test_seed_gradient_boosting_maps_to_online_boosting() -> None:
    spec = PipelineSpec.shipped("churn_prediction")
    model = build_model(spec)
    booster = model[-1]
    assert isinstance(booster, ensemble.AdaBoostClassifier)
    assert booster.n_models == 100
    assert isinstance(booster.model, tree.HoeffdingTreeClassifier)
    assert booster.model.max_depth == 6
    text = describe_model(spec)
    assert "river.ensemble.AdaBoostClassifier(n_models=100, seed=42)" in text
    assert "n_estimators -> n_models" in text
    assert "max_depth -> base HoeffdingTreeClassifier.max_depth" in text
    assert "River has no gradient-boosted tree ensemble" in text


def test_gradient_boosting_regression_is_one_sgt() -> None:
    model = build_estimator("gradient_boosting", "regression", {"max_depth": 4})
    assert isinstance(model, tree.SGTRegressor) and model.max_depth == 4
    with pytest.raises(
        ConfigError, match="unknown hyperparameter 'n_estimators' for river.tree.SGTRegressor"
    ):
        build_estimator("gradient_boosting", "regression", {"n_estimators": 10})


def test_trees_are_bounded_by_default_and_overridable() -> None:
    model = build_estimator("hoeffding_tree", "classification", {})
    assert (model.max_depth, model.max_size, model.memory_estimate_period) == (12, 32.0, 100_000)
    model = build_estimator("hoeffding_tree", "classification", {"max_depth": 3})
    assert model.max_depth == 3
    forest = build_estimator("adaptive_random_forest", "regression", {"n_estimators": 4})
    assert (forest.n_models, forest.max_depth, forest.max_size) == (4, 12, 16.0)
    srp = build_estimator("streaming_random_patches", "classification", {"max_depth": 5})
    assert isinstance(srp.model, tree.HoeffdingTreeClassifier) and srp.model.max_depth == 5
    assert build_estimator("amf", "classification", {}).max_nodes == 4096
    assert build_estimator("sgt", "regression", {}).max_depth == 8


def test_unknown_hyperparameter_is_named_with_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        check_hyperparameters("hoeffding_tree", "classification", {"max_dept": 3, "grace_period": 10})
    message = str(info.value)
    assert (
        "hoeffding_tree: unknown hyperparameter 'max_dept' for river.tree.HoeffdingTreeClassifier" in message
    )
    assert "allowed: " in message and "grace_period" in message and "split_criterion" in message
    assert "did you mean 'max_depth'?" in message


def test_hyperparameters_that_set_the_same_thing_are_rejected() -> None:
    with pytest.raises(
        ConfigError, match="hyperparameters 'n_estimators' and 'n_models' both set 'n_models'; keep one"
    ):
        check_hyperparameters("gradient_boosting", "classification", {"n_estimators": 3, "n_models": 4})


def test_learning_rate_and_nested_river_objects() -> None:
    model = build_estimator("logistic_regression", "classification", {"learning_rate": 0.2})
    assert isinstance(model, linear_model.LogisticRegression)
    assert isinstance(model.optimizer, optim.SGD) and model.optimizer.lr.learning_rate == 0.2
    model = build_estimator(
        "logistic_regression", "classification", {"optimizer": {"type": "river.optim.Adam", "lr": 0.01}}
    )
    assert isinstance(model.optimizer, optim.Adam) and model.optimizer.lr.learning_rate == 0.01
    with pytest.raises(ConfigError, match="has no parameter\\(s\\) 'lrr'; allowed: lr"):
        build_estimator(
            "logistic_regression", "classification", {"optimizer": {"type": "river.optim.SGD", "lrr": 1}}
        )
    with pytest.raises(ConfigError, match="only public names under 'river.'"):
        build_estimator("logistic_regression", "classification", {"optimizer": {"type": "subprocess.Popen"}})


def test_construction_failures_become_config_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"gradient_boosting.hyperparameters: river.ensemble.*n_models='many'"
    ):
        build_estimator("gradient_boosting", "classification", {"n_estimators": "many"})


def test_any_river_estimator_by_dotted_path() -> None:
    spec = spec_for(
        {
            "type": "river.ensemble.BaggingClassifier",
            "hyperparameters": {"model": {"type": "river.linear_model.LogisticRegression"}, "n_models": 2},
        }
    )
    model = build_model(spec)
    assert isinstance(model[-1], ensemble.BaggingClassifier)
    for x, y in PHISHING[:50]:
        model.learn_one(x, y)
    assert True in model.predict_proba_one(PHISHING[60][0])
    with pytest.raises(ConfigError, match="needs hyperparameter\\(s\\) model"):
        check_hyperparameters("river.ensemble.BaggingClassifier", "classification", {})
    with pytest.raises(ConfigError, match="not a known model type"):
        check_hyperparameters("builtins.eval", "classification", {})


def make_order(rng: random.Random) -> tuple[dict[str, Any], bool]:
    method = rng.choice(["card", "paypal", "gift_card", "bank_transfer"])
    mismatch = rng.random() < 0.2
    total = rng.lognormvariate(4.0, 0.6)
    risk = -4.0 + (2.5 if method == "gift_card" else 0.0) + (2.0 if mismatch else 0.0) + total / 200
    fraud = rng.random() < 1 / (1 + math.exp(-risk))
    x = {
        "order_total": total,
        "orders_1h": rng.randint(0, 3),
        "orders_24h": rng.randint(0, 8),
        "spend_24h": total * rng.uniform(1, 3),
        "mean_order_value_30d": rng.lognormvariate(4.0, 0.5),
        "lifetime_spend": rng.lognormvariate(6.0, 1.0),
        "seconds_since_last_order": rng.expovariate(1 / 86_400),
        "account_age_days": rng.randint(0, 2000),
        "country_mismatch": mismatch,
        "payment_method": method,
    }
    return x, fraud


def test_fraud_pipeline_learns_categorical_and_boolean_features() -> None:
    spec = PipelineSpec.shipped("fraud_detection")
    model = build_model(spec)
    rng = random.Random(7)
    for _ in range(4000):
        x, y = make_order(rng)
        model.learn_one(x, y)
    x, _ = make_order(random.Random(1))
    features = model[0].transform_one(x)
    assert features["country_mismatch"] in (0, 1)
    assert any(name.startswith("payment_method_") for name in features)
    risky = {**x, "payment_method": "gift_card", "country_mismatch": True}
    safe = {**x, "payment_method": "card", "country_mismatch": False}
    assert model.predict_proba_one(risky)[True] > 2 * model.predict_proba_one(safe)[True]
    assert "OneHotEncoder on payment_method" in describe_model(spec)
    assert "0/1 on country_mismatch" in describe_model(spec)


def test_booleans_to_int() -> None:
    assert factory.booleans_to_int({"a": True, "b": False, "c": "yes", "d": "0", "e": None}) == {
        "a": 1,
        "b": 0,
        "c": 1,
        "d": 0,
    }


def test_supports_many_follows_the_estimator() -> None:
    linear = build_model(PipelineSpec.shipped("fraud_detection"))
    boosted = build_model(PipelineSpec.shipped("churn_prediction"))
    assert supports_many(linear, require_backend=False)
    assert not supports_many(boosted, require_backend=False)


def test_every_table_entry_is_documented() -> None:
    doc = factory.__doc__ or ""
    for name, entry in MODEL_TABLE.items():
        assert f"| `{name}` |" in doc
        for path in (entry.classifier, entry.regressor):
            if path:
                assert path.removeprefix("river.") in doc
                resolve_river_class(path)
