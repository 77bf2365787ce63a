"""Mini-batch learning (training.mini_batch): River's learn_many on chunks, prequential, each label once."""

from __future__ import annotations

import random
import sys
from typing import Any

import pandas as pd
import pytest
from aiokafka.structs import ConsumerRecord

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.factory import MODEL_TABLE, build_model
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.mini_batch import check_mini_batch, learn_labels_in_chunks, mini_batch_size
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import InMemoryVectorStore, VectorWrite
from hanzo.ml.schemas.events import Label, Order, to_json
from hanzo.ml.streams.learner_service import LabelJoiner, LearnerSlot
from hanzo.ml.streams.runtime import new_learner
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from hanzo.ml.streams.train import offline_components, train

FRAUD = PipelineSpec.shipped("fraud_detection")


def _fraud(mini_batch: Any = None, **changes: Any) -> PipelineSpec:
    data = FRAUD.model_dump()
    if mini_batch is not None:
        data["training"] = {**data["training"], "mini_batch": mini_batch}
    data.update(changes)
    return PipelineSpec.from_dict(data, source="fraud.yaml")


def _examples(n: int, seed: int = 3) -> list[tuple[str, dict[str, Any], float, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        total = rng.uniform(5, 900)
        x = {
            "order_total": total,
            "orders_1h": float(rng.randint(0, 3)),
            "orders_24h": float(rng.randint(0, 6)),
            "spend_24h": rng.uniform(0, 2000),
            "mean_order_value_30d": rng.uniform(10, 400),
            "lifetime_spend": rng.uniform(0, 9000),
            "seconds_since_last_order": rng.uniform(0, 1e6),
            "account_age_days": rng.uniform(0, 900),
            "country_mismatch": rng.random() < 0.1,
            "payment_method": rng.choice(["card", "paypal", "gift_card"]),
        }
        out.append((f"l{i}", x, float(total > 600 and rng.random() < 0.7), 1_700_000_000_000 + i))
    return out


def _frame(chunk: list[tuple[str, dict[str, Any], float, int]]) -> tuple[pd.DataFrame, pd.Series]:
    return pd.DataFrame([x for _, x, _, _ in chunk]), pd.Series([bool(y) for _, _, y, _ in chunk])


# -- the setting ----------------------------------------------------------------------------------------


def test_the_default_is_per_event_and_the_spec_hash_is_unchanged_by_the_new_field() -> None:
    assert FRAUD.training.mini_batch is None and mini_batch_size(FRAUD) == 0
    on = _fraud({"size": 64})
    assert mini_batch_size(on) == 64 and on.spec_hash != FRAUD.spec_hash
    # the per-event spec hashes as it did before the field existed (snapshot metadata stays comparable)
    assert FRAUD.spec_hash == "9d801f2029a35af64fa398102319b90db3ee2b4f4a401743dd8455f868b2ca9a"


@pytest.mark.parametrize(
    ("bad", "where", "says"),
    [
        (
            {"size": 1},
            "training.mini_batch.size",
            r"1 is not a chunk size; use a whole number from 2 to 10000",
        ),
        ({"size": 0}, "training.mini_batch.size", r"0 is not a chunk size; .*remove training.mini_batch"),
        ({"size": -4}, "training.mini_batch.size", r"-4 is not a chunk size"),
        ({"size": 10_001}, "training.mini_batch.size", r"10001 is not a chunk size"),
        ({"size": 2.5}, "training.mini_batch.size", r"2.5 is not a chunk size"),
        ({"size": True}, "training.mini_batch.size", r"True is not a chunk size"),
        ({"size": "many"}, "training.mini_batch.size", r"'many' is not a chunk size"),
        ({}, "training.mini_batch.size", r"required and missing; add it \(keys of this section: size\)"),
        ({"sise": 8}, "training.mini_batch.sise", r"unknown key 'sise'; allowed: size; did you mean 'size'"),
        (64, "training.mini_batch", r"64 is not a mini-batch setting; write mini_batch: \{size: N\}"),
        ("on", "training.mini_batch", r"'on' is not a mini-batch setting"),
    ],
)
def test_bad_settings_are_rejected_naming_the_field_and_the_fix(bad: Any, where: str, says: str) -> None:
    with pytest.raises(ConfigError, match=rf"(?m)^fraud.yaml: {where}: {says}"):
        _fraud(bad)


def test_a_model_without_learn_many_is_refused_when_the_spec_loads() -> None:
    with pytest.raises(
        ConfigError,
        match=r"training.mini_batch: \{size: 50\}; model.type 'hoeffding_tree' \(HoeffdingTreeClassifier\) "
        r"has no River learn_many.*remove training.mini_batch or use a model that has it: logistic_reg",
    ):
        _fraud({"size": 50}, model={"type": "hoeffding_tree"})
    _fraud(None, model={"type": "hoeffding_tree"})  # per event, as before
    family = PipelineSpec.shipped("demand_forecasting").model_dump()
    family["training"] = {**family["training"], "mini_batch": {"size": 50}}
    with pytest.raises(ConfigError, match=r"a demand pipeline learns from its own stream.*remove"):
        PipelineSpec.from_dict(family, source="demand.yaml")


def test_every_model_the_setting_accepts_learns_in_chunks() -> None:
    accepted = []
    for task, metric in (("classification", "auc"), ("regression", "mae")):
        for name, entry in MODEL_TABLE.items():
            if entry.path(task) is None:
                continue
            try:
                spec = _fraud(
                    {"size": 16}, model={"type": name, "task": task}, evaluation={"metrics": [metric]}
                )
            except ConfigError:
                continue
            learner = new_learner(spec)
            outcomes = learn_labels_in_chunks(learner, _examples(50), 16)
            assert learner.examples_learned == 50 and None not in outcomes, name
            accepted.append(name)
    assert {"logistic_regression", "linear_regression"} <= set(accepted)


def test_without_pandas_the_wiring_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigError, match=r"training.mini_batch: \{size: 64\} .*pandas does not import; pip"):
        check_mini_batch(_fraud({"size": 64}))
    assert check_mini_batch(FRAUD) == 0  # per event needs no data frames


# -- what a chunk does ----------------------------------------------------------------------------------


def test_chunks_are_river_learn_many_and_each_chunk_is_predicted_by_the_model_before_it() -> None:
    spec = _fraud({"size": 64})
    learner = new_learner(spec)
    items = _examples(300)
    outcomes = learn_labels_in_chunks(learner, items, 64)
    assert learner.examples_learned == 300 and None not in outcomes
    # the same chunks through River's predict_proba_many then learn_many, on a fresh model of the spec
    reference = build_model(spec)
    metrics = MetricSet(spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window)
    predicted: list[float] = []
    for i in range(0, 300, 64):
        xs, ys = _frame(items[i : i + 64])
        before = list(reference.predict_proba_many(xs)[True])
        predicted += before
        for y, p in zip(ys, before, strict=True):
            metrics.update(y, p)
        reference.learn_many(xs, ys)
    lr, ref_lr = learner.model["LogisticRegression"], reference["LogisticRegression"]
    assert lr.weights == ref_lr.weights and lr.intercept == ref_lr.intercept
    assert learner.model.steps.keys() == reference.steps.keys()
    assert [o.y_pred for o in outcomes if o is not None] == predicted
    assert learner.metric_values() == metrics.get()  # the progressive metric is prequential per chunk
    assert {o.y_pred for o in outcomes[:64] if o is not None} == {0.5}  # the initial model
    # the losses feed the drift detector in label order, as per-event learning does
    assert learner.loss_detector.n_detections >= 0 and learner.drift_alarms == sum(
        o.drift for o in outcomes if o is not None
    )


def test_chunked_learning_differs_from_per_event_learning() -> None:
    """learn_many is one step per chunk: a real mode, not per-event learning renamed."""
    items = _examples(200)
    chunked, per_event = new_learner(_fraud({"size": 50})), new_learner(FRAUD)
    learn_labels_in_chunks(chunked, items, 50)
    for item in items:
        per_event.learn_label(*item)
    assert chunked.model["LogisticRegression"].weights != per_event.model["LogisticRegression"].weights


def test_each_label_is_learned_once_across_and_within_calls() -> None:
    learner = new_learner(_fraud({"size": 64}))
    items = _examples(300)
    first = learn_labels_in_chunks(learner, items[:150], 64)
    again = learn_labels_in_chunks(learner, items[100:300] + items[290:], 64)  # 50 learned, 10 repeated
    assert None not in first
    assert sum(o is None for o in again) == 60
    assert learner.examples_learned == 300
    assert all(learner.seen(label_id) for label_id, _, _, _ in items)


def test_non_finite_examples_are_rejected_and_counted_as_per_event() -> None:
    learner = new_learner(_fraud({"size": 8}))
    items = _examples(20)
    items[3] = (items[3][0], {**items[3][1], "order_total": float("nan")}, items[3][2], items[3][3])
    items[5] = (items[5][0], items[5][1], float("inf"), items[5][3])
    outcomes = learn_labels_in_chunks(learner, items, 8)
    assert [i for i, o in enumerate(outcomes) if o is None] == [3, 5]
    assert learner.rejected_non_finite == 2 and learner.examples_learned == 18


def test_a_chunk_with_a_missing_feature_fails_as_per_event_learning_does() -> None:
    """A data frame would turn a missing feature into NaN silently; per event, River's Select raises."""
    items = _examples(8)
    x = dict(items[2][1])
    del x["spend_24h"]
    items[2] = (items[2][0], x, items[2][2], items[2][3])
    chunked, per_event = new_learner(_fraud({"size": 8})), new_learner(FRAUD)
    with pytest.raises(KeyError, match="spend_24h"):
        for item in items:
            per_event.learn_label(*item)
    with pytest.raises(KeyError, match="spend_24h"):
        learn_labels_in_chunks(chunked, items, 8)
    assert chunked.examples_learned == per_event.examples_learned == 2
    assert chunked.model["LogisticRegression"].weights == per_event.model["LogisticRegression"].weights


# -- in the label joiner ----------------------------------------------------------------------------------


def _records(items: list[tuple[str, dict[str, Any], float, int]]) -> list[ConsumerRecord]:
    records = []
    for i, (lid, _, y, t) in enumerate(items):
        lab = Label(label_id=lid, subject_id=lid, target="fraud", value=y, event_time=t)
        value = to_json(lab)
        records.append(ConsumerRecord("labels", 0, i, t, 0, lid.encode(), value, None, 0, len(value), []))
    return records


def _joiner(spec: PipelineSpec, items: list[tuple[str, dict[str, Any], float, int]]) -> LabelJoiner:
    vectors = InMemoryVectorStore()
    vectors.write([], [VectorWrite(spec.name, lid, x, 0.0, t, 86_400) for lid, x, _, t in items])
    slot = LearnerSlot(
        spec.name,
        "fraud",
        new_learner(spec),
        spec.version,
        tuple(spec.data.features),
        mini_batch=mini_batch_size(spec),
    )
    return LabelJoiner([slot], None, vectors=vectors)


def test_a_joiner_with_mini_batches_learns_each_joined_label_once_in_chunks_of_its_batch() -> None:
    spec = _fraud({"size": 32})
    items = _examples(200)
    records = _records(items + items[:20])  # 20 re-delivered labels
    joiner = _joiner(spec, items)
    slot = joiner.slots[0]
    out = joiner.process(records[:150], now=0.0)
    out2 = joiner.process(records[150:], now=0.0)
    assert out.learned[spec.name] + out2.learned[spec.name] == 200 == slot.learner.examples_learned
    assert slot.duplicates == 20
    assert len(out.examples[spec.name]) == 150 and len(out.inputs[spec.name]) == 150
    # chunks never span two batches: 150 = 4 x 32 + 22, then 50 = 32 + 18
    reference = build_model(spec)
    for lo, hi in ((0, 32), (32, 64), (64, 96), (96, 128), (128, 150), (150, 182), (182, 200)):
        reference.learn_many(*_frame(items[lo:hi]))
    assert slot.learner.model["LogisticRegression"].weights == reference["LogisticRegression"].weights
    assert slot.learner.offsets == {"labels/0": 220}


def test_a_per_event_joiner_is_unchanged_learn_one_on_each_label() -> None:
    items = _examples(120)
    joiner = _joiner(FRAUD, items)
    slot = joiner.slots[0]
    assert slot.mini_batch == 0
    out = joiner.process(_records(items + items[:5]), now=0.0)
    reference = build_model(FRAUD)
    predicted = []
    for _, x, y, _ in items:
        predicted.append(reference.predict_proba_one(x)[True])
        reference.learn_one(x, bool(y))
    assert out.learned[FRAUD.name] == 120 and slot.duplicates == 5
    assert slot.learner.model["LogisticRegression"].weights == reference["LogisticRegression"].weights
    assert [p for p, _, _ in out.examples[FRAUD.name]] == pytest.approx(predicted, abs=1e-12)


# -- hanzo-ml train goes through the same joiner ----------------------------------------------------------


def test_train_learns_every_label_once_in_mini_batches_and_scores_the_holdout() -> None:
    events = sorted(
        Simulator(
            SimulatorConfig(
                seed=5,
                orders=1500,
                customers=150,
                orders_per_day=2000,
                chargeback_delay_days=(0.5, 3.0),
                settle_delay_days=(0.5, 2.0),
                fraud_rate=0.05,
            )
        ).events(),
        key=lambda e: e.event_time,
    )
    spec = _fraud({"size": 100})
    _, joiner = offline_components([spec])
    assert joiner.slots[0].mini_batch == 100
    chunked, per_event = train(spec, events), train(FRAUD, events)
    assert chunked.learner.examples_learned == per_event.learner.examples_learned > 0
    assert chunked.holdout_examples == per_event.holdout_examples > 0
    assert chunked.holdout is not None and chunked.holdout["auc"] is not None
    assert (
        chunked.learner.model["LogisticRegression"].weights
        != per_event.learner.model["LogisticRegression"].weights
    )
    assert sum(isinstance(e, Order) for e in events) == 1500
