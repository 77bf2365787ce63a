"""The same history through ``hanzo-ml train`` (in memory) and through the worker's components on real Redis.

The worker side is :func:`streams.runtime.build_runtime` (RedisOnlineStore, RedisVectorStore, Redis deadline
queues, two pipelines in one worker) fed by the same replay driver; the models must come out the same.

"The same" is to 1e-9 relative, not to the bit: the Redis feature store (Lua) and the in-memory one add a
window's values in different orders, so a sum or mean can differ in its last bit (e.g. 352.8 against
352.79999999999995); everything else on the two paths is the same code.
"""

from __future__ import annotations

import pytest
import yaml

from hanzo.ml.config.settings import Settings
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.streams.runtime import build_runtime
from hanzo.ml.streams.simulation import BGNBD, Simulator, SimulatorConfig
from hanzo.ml.streams.train import replay, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def events():
    sim = Simulator(
        SimulatorConfig(
            seed=31,
            orders=1500,
            customers=80,
            orders_per_day=10,
            signups_per_day=0.5,
            fraud_rate=0.06,
            browse_events_per_order=0.5,
            chargeback_delay_days=(0.5, 3.0),
            settle_delay_days=(0.5, 2.0),
            churn=BGNBD(r=2, a=1, b=40),  # a small base: low drop-out, so it lasts the stream
        )
    )
    return sorted(sim.events(), key=lambda e: e.event_time)


def write_specs(folder) -> list:
    fraud = PipelineSpec.shipped("fraud_detection").model_dump(mode="json")
    churn = PipelineSpec.shipped("churn_prediction").model_dump(mode="json")
    churn["model"] = {"type": "gradient_boosting", "hyperparameters": {"n_estimators": 4, "max_depth": 4}}
    paths = []
    for data in (fraud, churn):
        data["training"] = {"split": 0.8, "validation": "progressive"}
        path = folder / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        paths.append(path)
    return paths


def assert_same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for window in a:
        assert a[window] == pytest.approx(b[window], rel=1e-9), window


def test_train_and_worker_path_learn_identical_models(events, redis_url, redis_client, key_prefix, tmp_path):
    paths = write_specs(tmp_path)
    specs = [PipelineSpec.from_yaml(p) for p in paths]
    trained = {s.name: train(s, events, batch_size=500) for s in specs}

    settings = Settings(key_prefix=key_prefix, registry_dir=tmp_path / "registry")
    runtime = build_runtime(settings, redis_url, [str(p) for p in paths], redis_client=redis_client)
    assert [s.level for s in runtime.processor.scorers] == ["order", "customer"]
    stats = replay(events, runtime.processor, runtime.joiner, batch_size=500)

    fraud = {s.name: s for s in runtime.slots}["fraud_detection"].learner
    churn = {s.name: s for s in runtime.slots}["churn_prediction"].learner
    ours_fraud = trained["fraud_detection"].learner
    ours_churn = trained["churn_prediction"].learner

    # fraud: the logistic regression's weights and intercept are the same
    lr_worker = list(fraud.model.steps.values())[-1]
    lr_train = list(ours_fraud.model.steps.values())[-1]
    assert fraud.examples_learned == ours_fraud.examples_learned > 1000
    assert set(lr_worker.weights) == set(lr_train.weights)
    for name, w in lr_train.weights.items():
        assert lr_worker.weights[name] == pytest.approx(w, rel=1e-9, abs=1e-12), name
    assert lr_worker.intercept == pytest.approx(lr_train.intercept, rel=1e-9)
    assert_same_metrics(fraud.metric_values(), ours_fraud.metric_values())

    # churn: derived labels from the Redis deadline queue equal the in-memory ones, so does the model
    assert stats.derived_labels == trained["churn_prediction"].stats.derived_labels > 100
    assert churn.examples_learned == ours_churn.examples_learned == stats.derived_labels
    assert_same_metrics(churn.metric_values(), ours_churn.metric_values())
    probe = {"customer_lifetime_value": 250.0, "days_since_last_order": 30.0, "support_tickets_30d": 1.0}
    assert churn.score(probe) == pytest.approx(ours_churn.score(probe), rel=1e-9)

    # the deadline queue lives in Redis (open references survive a restart)
    assert redis_client.zcard(f"{key_prefix}dl:{{churn_prediction}}") > 0
    # the score a shop reads is per customer for churn, per order for fraud
    last_order = [e for e in events if e.kind == "order"][-1]
    assert runtime.processor.vectors.get_score("churn_prediction", last_order.customer_id) is not None
    assert runtime.processor.vectors.get_score("fraud_detection", last_order.order_id) is not None


def test_worker_continues_from_the_version_train_registered(
    events, redis_url, redis_client, key_prefix, tmp_path
):
    (fraud_path, _) = write_specs(tmp_path)
    spec = PipelineSpec.from_yaml(fraud_path)
    registry = Registry(tmp_path / "registry")
    result = train(spec, events, registry=registry)
    settings = Settings(key_prefix=key_prefix, registry_dir=tmp_path / "registry")
    runtime = build_runtime(settings, redis_url, [str(fraud_path)], redis_client=redis_client)
    (slot,) = runtime.slots
    assert slot.learner.version == result.version
    assert slot.learner.examples_learned == result.learner.examples_learned
    assert slot.learner.offsets == {}  # the labels topic is read from its beginning
