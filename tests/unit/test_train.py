"""``hanzo-ml train``: replay, holdout, registration, the threshold exit code, and the worker taking over."""

from __future__ import annotations

import pytest
import yaml

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import Label
from hanzo.ml.streams.cli.train import run_train
from hanzo.ml.streams.runtime import restore_learner
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, write_jsonl
from hanzo.ml.streams.train import load_history, train


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    sim = Simulator(
        SimulatorConfig(
            seed=4,
            orders=1200,
            customers=150,
            orders_per_day=300,
            fraud_rate=0.08,
            chargeback_delay_days=(0.5, 3.0),
            settle_delay_days=(0.5, 2.0),
        )
    )
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    write_jsonl(sim.events(), path)
    return path


def fraud_spec(threshold: float, validation: str = "time_based") -> PipelineSpec:
    data = PipelineSpec.shipped("fraud_detection").model_dump()
    data["evaluation"]["threshold"] = {"auc": threshold}
    data["training"] = {"split": 0.7, "validation": validation}
    return PipelineSpec.from_dict(data)


def test_time_based_holdout_predicts_without_learning(history):
    events = load_history(history)
    assert all(a.event_time <= b.event_time for a, b in zip(events, events[1:], strict=False))
    spec = fraud_spec(0.5)
    result = train(spec, events)
    labels = [e for e in events if isinstance(e, Label)]
    before = sum(1 for lab in labels if lab.event_time < result.split_ms)
    assert result.learner.examples_learned == before
    assert result.holdout_examples == len(labels) - before > 50
    assert result.evaluated_on == "holdout" and result.ok
    assert 0.5 < result.holdout["auc"] <= 1.0
    assert result.learner.offsets == {} and result.learner.pending == {}


def test_progressive_validation_learns_everything(history):
    events = load_history(history)
    result = train(fraud_spec(0.5, validation="progressive"), events)
    assert result.learner.examples_learned == sum(isinstance(e, Label) for e in events)
    assert result.holdout is None and result.evaluated_on == "progressive"


def test_registered_version_is_what_the_worker_continues_from(history, tmp_path):
    registry = Registry(tmp_path / "registry")
    spec = fraud_spec(0.5)
    result = train(spec, load_history(history), registry=registry)
    assert result.version == "1.0.0+snap.000001"
    meta = registry.list_versions(spec.name)[-1].metadata
    assert meta["spec_hash"] == spec.spec_hash
    assert meta["holdout"]["examples"] == result.holdout_examples
    assert meta["metrics"]["cumulative"]["auc"] == pytest.approx(result.progressive["cumulative"]["auc"])
    assert meta["thresholds_missed"] == {}
    restored = restore_learner(spec, registry)
    assert isinstance(restored, OnlineLearner)
    assert restored.version == result.version
    assert restored.examples_learned == result.learner.examples_learned


def test_cli_exits_1_naming_the_missed_threshold(history, tmp_path, capsys):
    data = fraud_spec(0.999).model_dump(mode="json")
    spec_file = tmp_path / "fraud.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    code = run_train(str(spec_file), history, tmp_path / "registry", 2000, None)
    out = capsys.readouterr().out
    assert code == 1
    assert "threshold missed" in out and "auc" in out and "0.999" in out
    assert "LogisticRegression" in out  # describe_model is printed
    # the version is registered anyway, with the miss recorded
    meta = Registry(tmp_path / "registry").list_versions("fraud_detection")[-1].metadata
    assert meta["thresholds_missed"]["auc"]["threshold"] == 0.999


def test_cli_exits_0_when_thresholds_are_met(history, tmp_path, capsys):
    spec_file = tmp_path / "fraud.yaml"
    spec_file.write_text(yaml.safe_dump(fraud_spec(0.5).model_dump(mode="json")))
    assert run_train(str(spec_file), history, tmp_path / "registry", 500, None) == 0
    assert "every threshold met" in capsys.readouterr().out


def test_missing_history_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_history(tmp_path / "nope.jsonl")


def test_spec_with_an_unknown_feature_is_refused_before_replay(history):
    data = fraud_spec(0.5).model_dump()
    data["data"]["features"] = ["order_total", "orders_per_fortnight"]
    with pytest.raises(ConfigError, match="orders_per_fortnight"):
        train(PipelineSpec.from_dict(data), load_history(history))
