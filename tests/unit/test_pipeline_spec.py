"""PipelineSpec: the seed YAML loads, defaults are derived, and every error names field, value and options."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.spec import PipelineSpec, shipped_names

SEED_YAML = """\
name: churn_prediction
version: 1.2.3
data:
  source: customers
  features: [customer_lifetime_value, days_since_last_order, support_tickets_30d]
  label: churned_90d
model:
  type: gradient_boosting
  hyperparameters: {n_estimators: 100, max_depth: 6}
training: {split: 0.8, validation: time_based}
evaluation:
  metrics: [auc, precision, recall]
  threshold: {auc: 0.85}
"""

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "pipelines"


def seed() -> dict[str, Any]:
    return yaml.safe_load(SEED_YAML)


def load_error(data: Any, source: str = "churn_prediction.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        PipelineSpec.from_dict(data, source=source)
    return str(info.value)


def test_seed_yaml_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "churn_prediction.yaml"
    path.write_text(SEED_YAML)
    spec = PipelineSpec.from_yaml(path)
    assert spec.name == "churn_prediction"
    assert spec.version == "1.2.3"
    assert spec.data.source == "customers"
    assert spec.data.entity == "customer"
    assert spec.data.features == ("customer_lifetime_value", "days_since_last_order", "support_tickets_30d")
    assert spec.data.feature_type("days_since_last_order") == "numeric"
    assert spec.model.type == "gradient_boosting"
    assert spec.model.task == "classification"
    assert spec.model.hyperparameters == {"n_estimators": 100, "max_depth": 6}
    assert (spec.training.split, spec.training.validation) == (0.8, "time_based")
    assert spec.evaluation.metrics == ("auc", "precision", "recall")
    assert spec.evaluation.threshold == {"auc": 0.85}
    assert spec.evaluation.rolling_window == 1000
    assert (spec.labels.kind, spec.labels.rule, spec.labels.horizon_days) == (
        "derived",
        "no_order_within_horizon",
        90,
    )
    assert spec.scoring.output_key == "score:{model}:{subject}"
    assert (spec.snapshots.every_examples, spec.snapshots.every_seconds, spec.snapshots.keep_last) == (
        1000,
        300.0,
        20,
    )
    assert spec.monitoring.drift_response == "alert"


def test_shipped_churn_file_is_the_seed_plus_comments() -> None:
    shipped_text = (SHIPPED / "churn_prediction.yaml").read_text()
    assert yaml.safe_load(shipped_text) == seed()
    assert PipelineSpec.shipped("churn_prediction") == PipelineSpec.from_dict(seed())


def test_shipped_fraud_pipeline() -> None:
    spec = PipelineSpec.shipped("fraud_detection")
    assert spec.data.source == "orders"
    assert spec.data.entity == "order"
    assert spec.data.label == "fraud"
    assert len(spec.data.features) == 10
    assert spec.data.feature_type("payment_method") == "categorical"
    assert spec.data.feature_type("country_mismatch") == "boolean"
    assert spec.data.feature_type("order_total") == "numeric"
    assert spec.model.type == "logistic_regression"
    assert spec.evaluation.metrics == ("auc", "logloss", "precision", "recall")
    assert spec.evaluation.threshold == {"auc": 0.8}
    assert (spec.labels.kind, spec.labels.rule) == ("explicit", None)
    assert {"churn_prediction", "fraud_detection"} <= set(shipped_names())


def test_unknown_shipped_pipeline_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fraud_detection'"):
        PipelineSpec.shipped("fraud_detect")


def test_unknown_top_level_key_is_named_with_allowed_keys() -> None:
    data = seed()
    data["trainig"] = {"split": 0.7}
    message = load_error(data)
    assert "churn_prediction.yaml: trainig: unknown key 'trainig'" in message
    assert "allowed: name, version, description, data, model, training" in message
    assert "did you mean 'training'?" in message


def test_unknown_nested_key_names_the_field_path() -> None:
    data = seed()
    data["evaluation"]["tresholds"] = {"auc": 0.9}
    message = load_error(data)
    assert "evaluation.tresholds: unknown key 'tresholds'" in message
    assert "allowed: metrics, threshold, rolling_window" in message


def test_bad_model_type_suggests_close_match_in_one_line(tmp_path: Path) -> None:
    data = seed()
    data["model"]["type"] = "gradient_boost"
    path = tmp_path / "churn_prediction.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        PipelineSpec.from_yaml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: model.type: 'gradient_boost' is not a known model type; known: ")
    assert "logistic_regression" in message
    assert message.endswith("did you mean 'gradient_boosting'?")
    assert len(message.splitlines()) == 1  # no follow-on error about the task


def test_bad_hyperparameter_is_named_with_allowed_ones() -> None:
    data = seed()
    data["model"]["hyperparameters"]["n_estimator"] = 10
    message = load_error(data)
    assert "model.hyperparameters: gradient_boosting: unknown hyperparameter 'n_estimator'" in message
    assert "allowed: " in message and "max_depth" in message and "n_estimators" in message
    assert "did you mean 'n_estimators'?" in message


def test_literal_choice_lists_the_options_and_suggests() -> None:
    data = seed()
    data["training"]["validation"] = "time"
    assert "training.validation: 'time' is not allowed; allowed: time_based, progressive" in load_error(data)
    data = seed()
    data["monitoring"] = {"drift_response": "rollbak"}
    assert "did you mean 'rollback'?" in load_error(data)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("training", "split"), 1.5, "training.split: 1.5: Input should be less than 1"),
        (("training", "split"), 0, "training.split: 0: Input should be greater than 0"),
        (("version",), 1.2, "version: 1.2 is not a semantic version"),
        (("version",), "v1", "version: 'v1' is not a semantic version"),
        (("name",), "Churn Prediction", "name: 'Churn Prediction': String should match pattern"),
        (("data", "features"), [], "data.features: []: Tuple should have at least 1 item"),
    ],
)
def test_bad_values_name_path_and_value(path: tuple[str, ...], value: Any, expected: str) -> None:
    data = seed()
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert expected in load_error(data)


def test_missing_required_field() -> None:
    data = seed()
    del data["data"]["label"]
    assert "data.label: required and missing; add it" in load_error(data)


def test_threshold_metrics_must_be_known_and_evaluated() -> None:
    data = seed()
    data["evaluation"]["threshold"] = {"aucc": 0.8}
    assert "evaluation.threshold: 'aucc' is not a known metric" in load_error(data)
    data["evaluation"]["threshold"] = {"logloss": 0.3}
    assert "threshold on 'logloss', not in evaluation.metrics" in load_error(data)
    data["evaluation"]["threshold"] = {"auc": 1.5}
    assert "auc: 1.5 is outside [0, 1]" in load_error(data)


def test_unknown_metric_suggests() -> None:
    data = seed()
    data["evaluation"]["metrics"] = ["auc", "precison"]
    assert "evaluation.metrics: 'precison' is not a known metric" in load_error(data)
    assert "did you mean 'precision'?" in load_error(data)


def test_metrics_must_fit_the_task() -> None:
    data = seed()
    data["evaluation"]["metrics"] = ["auc", "mae"]
    data["evaluation"]["threshold"] = {}
    assert "evaluation.metrics: 'mae' cannot evaluate a classification model" in load_error(data)


def test_feature_types_must_name_listed_features() -> None:
    data = seed()
    data["data"]["feature_types"] = {"clv": "numeric"}
    assert "'clv' is not in data.features" in load_error(data)
    data["data"]["feature_types"] = {"days_since_last_order": "text"}
    assert "data.feature_types.days_since_last_order: 'text' is not allowed" in load_error(data)


def test_task_inference() -> None:
    data = seed()
    data["model"] = {"type": "hoeffding_tree"}
    data["evaluation"] = {"metrics": ["mae", "rmse"]}
    assert PipelineSpec.from_dict(data).model.task == "regression"
    data["model"] = {"type": "linear_regression"}
    data.pop("evaluation")
    spec = PipelineSpec.from_dict(data)
    assert spec.model.task == "regression"
    assert spec.evaluation.metrics == ("mae", "rmse")
    data["model"] = {"type": "logistic_regression", "task": "regression"}
    assert "model.task: 'regression' is not a task of model type 'logistic_regression'" in load_error(data)


def test_dotted_river_path_only() -> None:
    data = seed()
    data["model"] = {"type": "river.linear_model.LogisticRegression", "hyperparameters": {"l2": 0.01}}
    assert PipelineSpec.from_dict(data).model.task == "classification"
    for bad, expected in [
        ("os.system", "'os.system' is not a known model type"),
        ("river._private.Thing", "only public names under 'river.' are allowed"),
        ("river.tree.HoeffdingTreeClassifie", "did you mean 'HoeffdingTreeClassifier'?"),
        ("river.preprocessing.StandardScaler", "is not a River classifier or regressor"),
    ]:
        data["model"] = {"type": bad}
        assert expected in load_error(data)


def test_derived_and_explicit_labels() -> None:
    data = seed()
    data["data"]["label"] = "churned_30d"
    spec = PipelineSpec.from_dict(data)
    assert (spec.labels.kind, spec.labels.horizon_days) == ("derived", 30)
    data["labels"] = {"horizon_days": 45}
    assert "labels.horizon_days: 45 contradicts label 'churned_30d'" in load_error(data)
    data = seed()
    data["data"]["label"] = "returned"
    assert PipelineSpec.from_dict(data).labels.kind == "explicit"
    data["labels"] = {"kind": "derived"}
    assert "labels: rule: a derived label needs a rule; known: no_order_within_horizon" in load_error(data)
    data["labels"] = {"kind": "explicit", "rule": "no_order_within_horizon"}
    assert "kind is 'explicit'" in load_error(data)


def test_scoring_key_template() -> None:
    data = seed()
    data["scoring"] = {"output_key": "s:{model}:{version}:{subject}", "ttl_s": 60, "write_topic": False}
    spec = PipelineSpec.from_dict(data)
    assert spec.scoring.key_for("churn", "customer:7", version="3") == "s:churn:3:customer:7"
    data["scoring"] = {"output_key": "score:{model}"}
    assert "has no {subject} placeholder" in load_error(data)
    data["scoring"] = {"output_key": "score:{modle}:{subject}"}
    assert "unknown placeholder {modle}; allowed: model, subject, version, entity" in load_error(data)


def test_entity_is_derived_from_source() -> None:
    data = seed()
    data["data"]["source"] = "orders"
    assert PipelineSpec.from_dict(data).data.entity == "order"
    data["data"]["source"] = "categories"
    assert PipelineSpec.from_dict(data).data.entity == "category"
    data["data"]["entity"] = "customer"
    assert PipelineSpec.from_dict(data).data.entity == "customer"


def test_label_cannot_be_a_feature() -> None:
    data = seed()
    data["data"]["features"].append("churned_90d")
    assert "label 'churned_90d' is also listed in features" in load_error(data)


def test_yaml_problems(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: cannot read the pipeline spec"):
        PipelineSpec.from_yaml(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+, column \d+: invalid YAML"):
        PipelineSpec.from_yaml(broken)
    twice = tmp_path / "twice.yaml"
    twice.write_text(SEED_YAML + "name: other\n")
    with pytest.raises(ConfigError, match="key 'name' appears twice"):
        PipelineSpec.from_yaml(twice)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="scalar.yaml: a pipeline spec is a mapping"):
        PipelineSpec.from_yaml(scalar)


def test_spec_hash_is_canonical(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(SEED_YAML)
    from_file = PipelineSpec.from_yaml(path)
    reordered = dict(reversed(list(seed().items())))
    assert PipelineSpec.from_dict(reordered).spec_hash == from_file.spec_hash
    assert len(from_file.spec_hash) == 64
    int(from_file.spec_hash, 16)
    changed = seed()
    changed["model"]["hyperparameters"]["max_depth"] = 5
    assert PipelineSpec.from_dict(changed).spec_hash != from_file.spec_hash


def test_spec_is_frozen_and_input_not_mutated() -> None:
    data = seed()
    original = copy.deepcopy(data)
    spec = PipelineSpec.from_dict(data)
    assert data == original
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        spec.training.split = 0.5  # type: ignore[misc]


SIX = {
    "fraud_detection": (None, "classification", "score:{model}:{subject}"),
    "churn_prediction": (None, "classification", "score:{model}:{subject}"),
    "demand_forecasting": ("demand", "forecasting", "forecast:{subject}"),
    "recommendations": ("reco", "recommendation", "reco:{subject}"),
    "price_optimization": ("pricing", "bandit", "price:{subject}"),
    "search_ranking": ("ranking", "classification", "rank:{subject}"),
}


def test_every_shipped_pipeline_loads():
    names = shipped_names()
    assert set(names) == set(SIX)
    assert not (SHIPPED / "drafts").exists()
    for name in names:
        spec = PipelineSpec.from_yaml(SHIPPED / f"{name}.yaml")
        assert spec.name == name
        assert (spec.family, spec.model.task, spec.scoring.output_key) == SIX[name]
        assert spec.evaluation.threshold, f"{name} has no evaluation threshold"


def family(name: str) -> dict[str, Any]:
    return copy.deepcopy(PipelineSpec.shipped(name).model_dump())


def test_family_model_sections() -> None:
    demand = PipelineSpec.shipped("demand_forecasting")
    assert demand.model.horizon_days == 7 and demand.evaluation.metrics == ("mae", "rmse")
    pricing = PipelineSpec.shipped("price_optimization")
    assert pricing.model.arms == (0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.5) and pricing.model.policy == "ucb"
    reco = PipelineSpec.shipped("recommendations")
    assert reco.model.top_k == 10 and reco.model.targets == {"purchase": 1.0, "add_to_cart": 0.7, "view": 0.4}
    # the task, the metrics and the key follow from the type when they are left out
    data = family("demand_forecasting")
    data["model"] = {"type": "snarimax", "hyperparameters": {"p": 1, "d": 0, "q": 0}}
    del data["evaluation"]
    data["scoring"] = {}
    spec = PipelineSpec.from_dict(data)
    assert (spec.model.task, spec.evaluation.metrics, spec.scoring.output_key) == (
        "forecasting",
        ("mae",),
        "forecast:{subject}",
    )


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        ("demand_forecasting", ("model", "arms"), [0.9, 1.1], "model: arms is a setting of bandit models"),
        ("price_optimization", ("model", "arms"), None, "model: arms: a bandit model needs its arms"),
        ("price_optimization", ("model", "arms"), [1.0, 1.0], "at least two distinct price multipliers"),
        (
            "price_optimization",
            ("model", "policy"),
            "greedy",
            "model.policy: 'greedy' is not allowed; allowed: ucb",
        ),
        ("recommendations", ("model", "targets"), {"purchased": 1.0}, "did you mean 'purchase'?"),
        (
            "recommendations",
            ("evaluation",),
            {"metrics": ["auc"]},
            "cannot evaluate a recommendation model; use: hit",
        ),
        ("recommendations", ("evaluation", "threshold"), {"hit_rate_at_10": 2}, "outside [0, 1]"),
        ("demand_forecasting", ("evaluation",), {"metrics": ["hit_rate_at_10"]}, "use: mae, rmse"),
        ("demand_forecasting", ("scoring", "output_key"), "score:{subject}", "writes 'forecast:{subject}'"),
        ("search_ranking", ("training", "validation"), "time_based", "set validation: progressive"),
        ("demand_forecasting", ("model", "hyperparameters"), {"p": 0, "d": 0}, "needs hyperparameter(s) q"),
        ("price_optimization", ("model", "hyperparameters"), {"burn_in": 5}, "allowed: alpha, beta, seed"),
        ("price_optimization", ("model", "type"), "river.bandit.EpsilonGreedy", "use type linucb"),
    ],
)
def test_family_errors_name_the_field_and_the_fix(
    name: str, path: tuple[str, ...], value: Any, expected: str
):
    data = family(name)
    section = data
    for part in path[:-1]:
        section = section[part]
    section[path[-1]] = value
    assert expected in load_error(data, source=f"{name}.yaml")


def test_rollback_needs_an_evaluation_threshold(tmp_path: Path) -> None:
    data = seed()
    data["evaluation"].pop("threshold")
    data["monitoring"] = {"drift_response": "rollback"}
    path = tmp_path / "churn_prediction.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        PipelineSpec.from_yaml(path)
    message = str(info.value)
    assert "churn_prediction.yaml: monitoring.drift_response: 'rollback'" in message
    assert "evaluation.threshold, which is empty" in message
    assert "threshold: {auc: 0.8}" in message  # the fix
    data["evaluation"]["threshold"] = {"auc": 0.8}
    assert PipelineSpec.from_dict(data).monitoring.drift_response == "rollback"
    data["evaluation"]["threshold"] = {}
    data["monitoring"] = {"drift_response": "challenger"}
    assert PipelineSpec.from_dict(data).evaluation.threshold == {}
