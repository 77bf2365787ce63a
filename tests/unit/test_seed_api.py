"""The announcement's snippets run as written: ``from hanzo.ml import ...`` and the calls it shows."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from river import linear_model

import hanzo.ml
from hanzo.ml import Feature, FeatureStore, Model, Monitor, Registry, ServingEngine


def test_every_exported_name_resolves() -> None:
    assert len(hanzo.ml.__all__) == len(set(hanzo.ml.__all__))
    for name in hanzo.ml.__all__:
        assert getattr(hanzo.ml, name) is not None, name
    seed = {"FeatureStore", "Feature", "Registry", "Model", "ServingEngine", "Monitor"}
    assert seed <= set(hanzo.ml.__all__)


def test_feature_store_embedded_default_with_a_function_of_the_customer_id() -> None:
    store = FeatureStore()
    lifetime = {"cust_123": 1250.0}

    @store.feature
    def customer_lifetime_value(customer_id: str) -> float:
        return lifetime.get(customer_id, 0.0)

    got = store.get_features(customer_id="cust_123", features=["customer_lifetime_value", "orders_24h"])
    assert got == {"customer_lifetime_value": 1250.0, "orders_24h": 0.0}
    lifetime["cust_123"] = 1300.0  # computed on every read, not cached
    assert store.get_features(customer_id="cust_123", features=["customer_lifetime_value"]) == {
        "customer_lifetime_value": 1300.0
    }
    info = {f.name: f for f in store.list_features()}["customer_lifetime_value"]
    assert (info.entity, info.kind) == ("customer", "derived")


def test_a_function_of_an_unknown_entity_id_is_refused() -> None:
    store = FeatureStore()
    with pytest.raises(hanzo.ml.ConfigError, match="'shop' is not an entity"):

        @store.feature
        def shop_rating(shop_id: str) -> float:
            return 1.0


def test_feature_is_the_declarative_definition() -> None:
    spend = Feature(name="spend_7d", entity="customer", source="orders", field="total", aggregation="sum",
                    window="7d")
    store = FeatureStore([spend])
    assert store.get_features(customer_id="c1", features=["spend_7d"]) == {"spend_7d": 0.0}


def test_registry_register_and_load_latest(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model = linear_model.LogisticRegression()
    model.learn_one({"x": 1.0}, True)
    version = registry.register(model=model, name="churn_prediction", version="1.2.3",
                                metadata={"auc": 0.81, "trained_on": "2026-12-01"})
    assert isinstance(version, Model)
    assert (version.version, version.metadata["auc"]) == ("1.2.3", 0.81)
    loaded = registry.load("churn_prediction", version="latest")
    assert loaded.predict_proba_one({"x": 1.0}) == model.predict_proba_one({"x": 1.0})


def test_registry_defaults_to_the_workers_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_STATE_DIR", str(tmp_path))
    registry = Registry()
    registry.register(model=linear_model.LogisticRegression(), name="fraud", version="1.0.0")
    assert (tmp_path / "registry" / "models" / "fraud").is_dir()


def test_serving_engine_register_and_synchronous_predict() -> None:
    store = FeatureStore()
    engine = ServingEngine(store)
    model = linear_model.LogisticRegression()
    engine.register("churn_prediction", model)
    prediction = engine.predict(model="churn_prediction", features={"customer_id": "cust_123"})
    assert prediction.entity_id == "cust_123"
    assert prediction.score == pytest.approx(0.5)
    # no features named: the model gets every feature the store keeps for the customer
    assert {"orders_24h", "spend_24h", "lifetime_spend"} <= set(prediction.features)


def test_monitor_reports_the_four_alert_conditions() -> None:
    rng = random.Random(7)
    monitor = Monitor("churn_prediction", reference_size=300, window_size=300, check_every=100, seed=0)
    for _ in range(1500):
        days = rng.expovariate(1 / 30)
        p = min(days / 100, 1.0)
        monitor.observe({"days_since_last_order": days}, y_pred=p, y_true=rng.random() < p, latency_s=0.001)
    quiet = monitor.status().alerts()
    assert quiet == {"FeatureDrift": False, "PredictionDrift": False, "ModelPerformanceDegraded": False,
                     "ScoringLatencyHigh": False}
    raised: set[str] = set()
    for i in range(3000):  # the inputs and the predictions shift, labels stop following them, scoring slows
        days = rng.expovariate(1 / 90)
        p = min(days / 100, 1.0)
        monitor.observe({"days_since_last_order": days}, y_pred=p, y_true=rng.random() < 0.5, latency_s=0.05)
        if i % 50 == 0:
            raised |= {name for name, on in monitor.status().alerts().items() if on}
        if len(raised) == 4:
            break
    assert raised == set(quiet)
