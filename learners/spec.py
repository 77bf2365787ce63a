"""The declarative pipeline spec: what a model learns from, how it is built, evaluated, served and watched.

A spec is loaded from YAML (``PipelineSpec.from_yaml``) or a mapping (``PipelineSpec.from_dict``). Every
section is a frozen pydantic model that forbids unknown keys; every error raised while loading is a
:class:`~hanzo.ml.config.errors.ConfigError` whose lines name the file, the field path, the bad value
and what is allowed. Model types are checked against the model table of :mod:`learners.factory` and
metric names against the metric table of :mod:`learners.metrics`.

Besides the per-entity classifiers and regressors (fraud, churn) a spec may describe a model family
(:attr:`PipelineSpec.family`, run by :mod:`learners.families`): ``task: forecasting`` (demand, River
time-series forecasters), ``task: recommendation`` (River recommenders), ``task: bandit`` (price
optimization) and a classifier of search sessions (``data.source: sessions``, search ranking). Their model
sections take the family's own settings (``horizon_days``; ``top_k``, ``negatives``, ``targets``; ``arms``,
``policy``, ``exploration``) and they write the family's Redis key (:data:`FAMILY_KEYS`).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import logging
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.factory import (
    MODEL_TABLE,
    build_estimator,
    check_hyperparameters,
    infer_task,
    resolve_river_class,
    supports_many,
)
from hanzo.ml.learners.metrics import METRICS, unknown_metric_message

logger = logging.getLogger(__name__)

__all__ = [
    "DERIVED_LABEL_RULES",
    "FAMILY_KEYS",
    "DataSection",
    "EvaluationSection",
    "LabelsSection",
    "MiniBatchSection",
    "ModelSection",
    "MonitoringSection",
    "PipelineSpec",
    "ScoringSection",
    "SnapshotsSection",
    "TrainingSection",
]

Task = Literal["classification", "regression", "forecasting", "recommendation", "bandit"]
FeatureType = Literal["numeric", "categorical", "boolean"]

SLUG = r"^[a-z][a-z0-9_-]{0,63}$"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DERIVED_LABEL_RULES: Mapping[str, str] = {
    "no_order_within_horizon": (
        "1 when the entity places no order within labels.horizon_days of the example's event time, "
        "0 as soon as it places one"
    ),
}
"""Rules the system knows for deriving labels, with what each means."""

_CHURN_LABEL = re.compile(r"^churn(?:ed)?(?:_(\d+)d)?$")
_KEY_FIELDS = ("model", "subject", "version", "entity")
_BOUNDED_METRICS = {"auc", "precision", "recall", "f1", "accuracy", "hit_rate_at_10"}
_NON_NEGATIVE_METRICS = {"logloss", "mae", "rmse", "mape", "mean_reward", "cumulative_revenue"}

#: Model family -> the Redis key template it writes (``learners/families/keys.py``).
FAMILY_KEYS: Mapping[str, str] = {
    "demand": "forecast:{subject}",
    "reco": "reco:{subject}",
    "pricing": "price:{subject}",
    "ranking": "rank:{subject}",
}
_FAMILY_OF_TASK = {"forecasting": "demand", "recommendation": "reco", "bandit": "pricing"}
#: Model fields only a task's family takes.
_FAMILY_FIELDS = {
    "horizon_days": "forecasting",
    "top_k": "recommendation",
    "negatives": "recommendation",
    "targets": "recommendation",
    "arms": "bandit",
    "policy": "bandit",
    "exploration": "bandit",
}
_INTERACTIONS = ("purchase", "add_to_cart", "view")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSection(_Section):
    """Where examples come from: the source stream, the entity scored, the features and the label."""

    source: str = Field(pattern=SLUG, description="the stream examples come from, e.g. customers or orders")
    entity: str = Field(pattern=SLUG, description="what one example is about; derived from source by default")
    features: tuple[str, ...] = Field(min_length=1)
    label: str = Field(pattern=FEATURE_NAME.pattern)
    feature_types: dict[str, FeatureType] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _derive_entity(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("entity") is None and isinstance(data.get("source"), str):
            source: str = data["source"]
            entity = source[:-3] + "y" if source.endswith("ies") else source.removesuffix("s")
            data = {**data, "entity": entity}
        return data

    @field_validator("features")
    @classmethod
    def _check_features(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in features if not FEATURE_NAME.match(f)]
        if bad:
            msg = f"{bad[0]!r} is not a feature name; use letters, digits and _ (e.g. orders_24h)"
            raise ValueError(msg)
        repeated = sorted({f for f in features if features.count(f) > 1})
        if repeated:
            msg = f"{', '.join(map(repr, repeated))} listed more than once; list each feature once"
            raise ValueError(msg)
        return features

    @model_validator(mode="after")
    def _check_cross(self) -> DataSection:
        for name in self.feature_types:
            if name not in self.features:
                msg = (
                    f"feature_types: {name!r} is not in data.features; known: {', '.join(self.features)}"
                    f"{_suggest(name, list(self.features))}"
                )
                raise ValueError(msg)
        if self.label in self.features:
            msg = f"label {self.label!r} is also listed in features; a model must not see its own label"
            raise ValueError(msg)
        return self

    def feature_type(self, name: str) -> FeatureType:
        """Return the type of feature ``name`` (``numeric`` unless ``feature_types`` says otherwise)."""
        return self.feature_types.get(name, "numeric")


class ModelSection(_Section):
    """Which estimator learns, with which hyperparameters, for which task (the type may imply the task)."""

    type: str = Field(description="a key of the model table of learners.factory or a dotted 'river.' path")
    task: Task = Field(
        description="classification or regression; inferred from type when the type implies it"
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    horizon_days: int | None = Field(None, gt=0, le=366, description="forecasting: days forecast ahead (7)")
    top_k: int | None = Field(None, gt=0, le=1000, description="recommendation: products per customer (10)")
    negatives: int | None = Field(None, ge=0, le=100, description="recommendation: sampled non-interactions")
    targets: dict[str, float] | None = Field(None, description="recommendation: target by interaction kind")
    arms: tuple[float, ...] | None = Field(None, description="bandit: price multipliers of the list price")
    policy: Literal["ucb", "thompson"] | None = Field(None, description="bandit: how an arm is chosen")
    exploration: float | None = Field(None, ge=0, description="bandit: scale of the posterior sd")

    @model_validator(mode="before")
    @classmethod
    def _infer_task(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("task") is None and isinstance(data.get("type"), str):
            try:
                task = infer_task(data["type"])
            except ConfigError:
                task = None  # the type validator reports the type; no second error about the task
            data = {**data, "task": task or "classification"}
        return data

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        try:
            infer_task(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("task")
    @classmethod
    def _check_task(cls, task: Task, info: ValidationInfo) -> Task:
        model_type = info.data.get("type")
        if model_type is None:
            return task
        entry = MODEL_TABLE.get(model_type)
        implied = infer_task(model_type) if entry is None else None
        supported: tuple[str, ...] = entry.tasks if entry is not None else ((implied,) if implied else ())
        if supported and task not in supported:
            msg = f"{task!r} is not a task of model type {model_type!r}; it supports: {', '.join(supported)}"
            raise ValueError(msg)
        return task

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, targets: dict[str, float] | None) -> dict[str, float] | None:
        for kind in targets or {}:
            if kind not in _INTERACTIONS:
                msg = f"{kind!r} is not an interaction kind; known: {', '.join(_INTERACTIONS)}"
                raise ValueError(msg + _suggest(kind, list(_INTERACTIONS)))
        return targets

    @field_validator("arms")
    @classmethod
    def _check_arms(cls, arms: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if arms is None:
            return arms
        if len(arms) < 2 or len(set(arms)) != len(arms) or any(not 0 < a <= 10 for a in arms):
            msg = (
                f"{list(arms)!r}: a bandit needs at least two distinct price multipliers in (0, 10], "
                "e.g. [0.9, 1.0, 1.1]"
            )
            raise ValueError(msg)
        return arms

    @model_validator(mode="after")
    def _check_family_fields(self) -> ModelSection:
        for name, task in _FAMILY_FIELDS.items():
            if getattr(self, name) is not None and self.task != task:
                msg = f"{name} is a setting of {task} models, and this model's task is {self.task}; remove it"
                raise ValueError(msg)
        if self.task == "bandit" and self.arms is None:
            msg = "arms: a bandit model needs its arms (multipliers of the list price), e.g. [0.9, 1.0, 1.1]"
            raise ValueError(msg)
        return self

    @field_validator("hyperparameters")
    @classmethod
    def _check_hyperparameters(cls, hyperparameters: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        model_type, task = info.data.get("type"), info.data.get("task")
        if model_type is None or task is None:
            return hyperparameters
        try:
            check_hyperparameters(model_type, task, hyperparameters)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return hyperparameters


_MINI_BATCH_MAX = 10_000


class MiniBatchSection(_Section):
    """Opt-in mini-batch learning: ``size`` labels per River ``learn_many`` (:mod:`learners.mini_batch`)."""

    size: int = Field(description="labels per learn_many chunk, 2 to 10000")

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= _MINI_BATCH_MAX:
            msg = (
                f"{value!r} is not a chunk size; use a whole number from 2 to {_MINI_BATCH_MAX} (labels "
                "learned per River learn_many), or remove training.mini_batch to learn each label as it comes"
            )
            raise ValueError(msg)
        return value


class TrainingSection(_Section):
    """How the model learns: ``hanzo-ml train``'s split of history, and per-event or mini-batch learning.

    Without ``mini_batch`` (the default) each label is predicted, then learned with ``learn_one``. With
    ``mini_batch: {size: N}`` the labels joined in one batch are learned in chunks of up to N with River's
    ``learn_many``, each chunk predicted by the model before it (:mod:`learners.mini_batch`); the spec
    is refused for a model without ``learn_many``.
    """

    split: float = Field(0.8, gt=0, lt=1, description="share of history (in event-time order) to learn from")
    validation: Literal["time_based", "progressive"] = "time_based"
    mini_batch: MiniBatchSection | None = Field(None, description="opt-in: learn_many on chunks of labels")

    @field_validator("mini_batch", mode="before")
    @classmethod
    def _check_mini_batch(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, Mapping):
            msg = (
                f"{value!r} is not a mini-batch setting; write mini_batch: {{size: N}} with N from 2 to "
                f"{_MINI_BATCH_MAX} (labels per River learn_many), or remove it to learn each label as it "
                "comes"
            )
            raise ValueError(msg)
        return value


class EvaluationSection(_Section):
    """Which metrics are tracked, the thresholds a model must meet, and the rolling window."""

    metrics: tuple[str, ...] = Field(min_length=1)
    threshold: dict[str, float] = Field(default_factory=dict)
    rolling_window: int = Field(1000, gt=0)

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        for name in metrics:
            if name not in METRICS:
                raise ValueError(unknown_metric_message(name))
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            msg = f"{', '.join(map(repr, repeated))} listed more than once; list each metric once"
            raise ValueError(msg)
        return metrics

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, threshold: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for name, value in threshold.items():
            if name not in METRICS:
                raise ValueError(unknown_metric_message(name))
            metrics = info.data.get("metrics")
            if metrics is not None and name not in metrics:
                msg = f"threshold on {name!r}, not in evaluation.metrics {list(metrics)}; add it there"
                raise ValueError(msg)
            if name in _BOUNDED_METRICS and not 0 <= value <= 1:
                msg = f"{name}: {value!r} is outside [0, 1], the range of {name}"
                raise ValueError(msg)
            if name in _NON_NEGATIVE_METRICS and value < 0:
                msg = f"{name}: {value!r} is negative; {name} is never below 0"
                raise ValueError(msg)
        return threshold


class LabelsSection(_Section):
    """Where labels come from: explicit label events, or derived by a rule after ``horizon_days``."""

    horizon_days: int = Field(90, gt=0)
    kind: Literal["explicit", "derived"]
    rule: Literal["no_order_within_horizon"] | None = None

    @model_validator(mode="after")
    def _check_rule(self) -> LabelsSection:
        if self.kind == "derived" and self.rule is None:
            msg = f"rule: a derived label needs a rule; known: {', '.join(DERIVED_LABEL_RULES)}"
            raise ValueError(msg)
        if self.kind == "explicit" and self.rule is not None:
            msg = f"rule: {self.rule!r} is set but kind is 'explicit'; set kind: derived or remove the rule"
            raise ValueError(msg)
        return self


class ScoringSection(_Section):
    """Where scores go: the Redis key template, its TTL, and whether scores are also written to the topic."""

    output_key: str = "score:{model}:{subject}"
    ttl_s: int = Field(86_400, gt=0, description="seconds a score stays in Redis")
    write_topic: bool = True

    @field_validator("output_key")
    @classmethod
    def _check_output_key(cls, template: str) -> str:
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            msg = f"{template!r} is not a valid template ({exc}); use placeholders like {{subject}}"
            raise ValueError(msg) from None
        unknown = [n for n in names if n not in _KEY_FIELDS]
        if unknown:
            msg = f"{template!r} uses unknown placeholder {{{unknown[0]}}}; allowed: {', '.join(_KEY_FIELDS)}"
            raise ValueError(msg)
        if "subject" not in names:
            msg = f"{template!r} has no {{subject}} placeholder; each subject needs its own key"
            raise ValueError(msg)
        return template

    def key_for(self, model: str, subject: str, version: str = "", entity: str = "") -> str:
        """Fill the key template.

        Examples
        --------
        >>> ScoringSection().key_for("fraud_detection", "order:42")
        'score:fraud_detection:order:42'
        """
        return self.output_key.format(model=model, subject=subject, version=version, entity=entity)


class SnapshotsSection(_Section):
    """How often the learner snapshots its model into the registry, and how many snapshots are kept."""

    every_examples: int = Field(1000, gt=0)
    every_seconds: float = Field(300.0, gt=0)
    keep_last: int = Field(20, gt=0)
    min_seconds: float = Field(
        2.0,
        ge=0,
        description=(
            "least time between two snapshots of a running learner: at high label rates it bounds what "
            "snapshots cost (pickling on the loop, writing, reloading by the servers that follow the model)"
        ),
    )


class MonitoringSection(_Section):
    """Drift detection: on or off, how often the KS check runs, and what a detected drift triggers."""

    drift_detectors: bool = True
    ks_check_every: int = Field(1000, gt=0, description="examples between Kolmogorov-Smirnov checks")
    drift_response: Literal["alert", "challenger", "rollback"] = "alert"
    challenger_window: int = Field(
        1000, gt=0, description="labelled examples a challenger and the champion are compared over"
    )
    challenger_margin: float = Field(
        0.05, ge=0, description="how much better (log loss, or MAE for regression) the challenger must be"
    )
    challenger_max_examples: int = Field(
        20_000, gt=0, description="labelled examples after which a challenger that has not won is dropped"
    )

    @model_validator(mode="after")
    def _check_response(self) -> MonitoringSection:
        if self.drift_response != "alert" and not self.drift_detectors:
            msg = (
                f"drift_response: {self.drift_response!r} acts on drift alarms, but drift_detectors is "
                "false; set drift_detectors: true or drift_response: alert"
            )
            raise ValueError(msg)
        if self.challenger_max_examples < self.challenger_window:
            msg = (
                f"challenger_max_examples: {self.challenger_max_examples} is below challenger_window "
                f"{self.challenger_window}; a challenger needs a full window before it can win"
            )
            raise ValueError(msg)
        return self


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _implied_task(model_type: Any) -> str | None:
    if not isinstance(model_type, str):
        return None
    try:
        return infer_task(model_type)
    except ConfigError:
        return None


def _family_of(task: Any, source: Any) -> str | None:
    if isinstance(task, str) and task in _FAMILY_OF_TASK:
        return _FAMILY_OF_TASK[task]
    if isinstance(source, Mapping) and source.get("source") == "sessions" and task == "classification":
        return "ranking"
    return None


def _fill_defaults(data: dict[str, Any]) -> None:
    """Fill defaults that depend on other sections (task from metrics, metrics from task, label kind, key)."""
    model, evaluation = data.get("model"), data.get("evaluation", {})
    source = data.get("data")
    if isinstance(model, dict) and isinstance(evaluation, dict) and model.get("task") is None:
        try:
            implied = infer_task(model["type"]) if isinstance(model.get("type"), str) else "unknown"
        except ConfigError:
            implied = "unknown"
        metrics = evaluation.get("metrics")
        if implied is None and isinstance(metrics, list | tuple) and metrics:
            tasks = {METRICS[m].task for m in metrics if isinstance(m, str) and m in METRICS}
            if tasks == {"regression"}:
                model["task"] = "regression"
    if isinstance(evaluation, dict) and evaluation.get("metrics") is None:
        model = model if isinstance(model, dict) else {}
        task = model.get("task")
        if task is None and isinstance(model.get("type"), str):
            try:
                task = infer_task(model["type"])
            except ConfigError:
                task = None
        defaults = {
            "regression": ["mae", "rmse"],
            "forecasting": ["mae"],
            "recommendation": ["hit_rate_at_10"],
            "bandit": ["mean_reward", "cumulative_revenue"],
        }
        evaluation["metrics"] = defaults.get(str(task), ["auc", "logloss"])
        data["evaluation"] = evaluation
    if isinstance(model, dict):
        family = _family_of(model.get("task") or _implied_task(model.get("type")), source)
        scoring = data.get("scoring", {})
        if family is not None and isinstance(scoring, dict) and scoring.get("output_key") is None:
            data["scoring"] = {**scoring, "output_key": FAMILY_KEYS[family]}
    labels = data.get("labels", {})
    if isinstance(labels, dict):
        label = source.get("label") if isinstance(source, dict) else None
        churn = _CHURN_LABEL.match(label) if isinstance(label, str) else None
        if labels.get("kind") is None:
            labels["kind"] = "derived" if churn else "explicit"
            if churn and labels.get("rule") is None:
                labels["rule"] = "no_order_within_horizon"
        if churn and churn.group(1) and labels.get("kind") == "derived":
            days = int(churn.group(1))
            if labels.get("horizon_days") is None:
                labels["horizon_days"] = days
        data["labels"] = labels


def _check_mini_batch_model(spec: PipelineSpec) -> None:
    """Refuse ``training.mini_batch`` for a pipeline whose model has no River ``learn_many``."""
    assert spec.training.mini_batch is not None
    setting = f"training.mini_batch: {{size: {spec.training.mini_batch.size}}}"
    task = spec.model.task
    if spec.family is not None or task not in ("classification", "regression"):
        msg = (
            f"{setting}; a {spec.family or task} pipeline learns from its own stream, not in label chunks; "
            "remove training.mini_batch"
        )
        raise ValueError(msg)
    estimator = build_estimator(spec.model.type, task, spec.model.hyperparameters)
    if not supports_many(estimator, require_backend=False):
        have = sorted(name for name, entry in MODEL_TABLE.items() if _entry_has_many(entry.path(task)))
        msg = (
            f"{setting}; model.type {spec.model.type!r} ({type(estimator).__name__}) has no River "
            f"learn_many, so it can only learn per event; remove training.mini_batch or use a model that "
            f"has it: {', '.join(have)}"
        )
        raise ValueError(msg)


def _entry_has_many(path: str | None) -> bool:
    """Whether the River class at ``path`` (a model table entry) has the mini-batch methods."""
    return path is not None and supports_many(resolve_river_class(path), require_backend=False)


class PipelineSpec(_Section):
    """A declarative pipeline: data, model, training, evaluation, labels, scoring, snapshots, monitoring.

    Examples
    --------
    >>> spec = PipelineSpec.from_dict({
    ...     "name": "churn_prediction", "version": "1.2.3",
    ...     "data": {"source": "customers", "features": ["days_since_last_order"], "label": "churned_90d"},
    ...     "model": {"type": "gradient_boosting", "hyperparameters": {"n_estimators": 100, "max_depth": 6}},
    ...     "evaluation": {"metrics": ["auc", "precision", "recall"], "threshold": {"auc": 0.85}},
    ... })
    >>> spec.data.entity, spec.model.task, spec.labels.kind, spec.labels.horizon_days
    ('customer', 'classification', 'derived', 90)
    >>> len(spec.spec_hash)
    64
    >>> PipelineSpec.from_dict({**spec.model_dump(), "model": {"type": "gradient_boost"}}, source="x.yaml")
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ConfigError: x.yaml: model.type: 'gradient_boost' is not a known model type; ...
    """

    name: str = Field(pattern=SLUG)
    version: str
    description: str = ""
    data: DataSection
    model: ModelSection
    training: TrainingSection = TrainingSection()
    evaluation: EvaluationSection
    labels: LabelsSection
    scoring: ScoringSection = ScoringSection()
    snapshots: SnapshotsSection = SnapshotsSection()
    monitoring: MonitoringSection = MonitoringSection()

    @model_validator(mode="before")
    @classmethod
    def _defaults_across_sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = copy.deepcopy(dict(data))
            _fill_defaults(data)
        return data

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, version: Any) -> Any:
        if not isinstance(version, str) or not SEMVER.match(version):
            msg = f"{version!r} is not a semantic version MAJOR.MINOR.PATCH (e.g. '1.2.3'); quote it in YAML"
            raise ValueError(msg)
        return version

    @model_validator(mode="after")
    def _check_across_sections(self) -> PipelineSpec:
        metric_task = "regression" if self.model.task == "forecasting" else self.model.task
        wrong = [m for m in self.evaluation.metrics if METRICS[m].task != metric_task]
        if wrong:
            fitting = [n for n, m in METRICS.items() if m.task == metric_task]
            msg = (
                f"evaluation.metrics: {', '.join(map(repr, wrong))} cannot evaluate "
                f"a {self.model.task} model; "
                f"use: {', '.join(fitting)}"
            )
            raise ValueError(msg)
        churn = _CHURN_LABEL.match(self.data.label)
        if churn and churn.group(1) and self.labels.kind == "derived":
            if int(churn.group(1)) != self.labels.horizon_days:
                msg = (
                    f"labels.horizon_days: {self.labels.horizon_days} contradicts label {self.data.label!r} "
                    f"({churn.group(1)} days); make them agree"
                )
                raise ValueError(msg)
        family = self.family
        if self.training.mini_batch is not None:
            _check_mini_batch_model(self)
        if family is not None and self.training.validation != "progressive":
            msg = (
                f"training.validation: {self.training.validation!r}; a {family} pipeline is evaluated "
                "progressively (predict, then learn); set validation: progressive"
            )
            raise ValueError(msg)
        if family is not None and self.scoring.output_key != FAMILY_KEYS[family]:
            msg = (
                f"scoring.output_key: {self.scoring.output_key!r}; a {family} pipeline writes "
                f"{FAMILY_KEYS[family]!r} (learners/families/keys.py); set that or remove the key"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_drift_response(self) -> PipelineSpec:
        # a rollback goes back to the last version whose metrics pass evaluation.threshold
        if self.monitoring.drift_response == "rollback" and not self.evaluation.threshold:
            msg = (
                "monitoring.drift_response: 'rollback' returns to the last version whose metrics pass "
                "evaluation.threshold, which is empty, so no version can be judged good; add a threshold "
                "on one of evaluation.metrics (e.g. threshold: {auc: 0.8}) or use drift_response: alert "
                "or challenger"
            )
            raise ValueError(msg)
        return self

    @property
    def family(self) -> str | None:
        """The model family this pipeline belongs to (``demand``, ``reco``, ``pricing``, ``ranking``).

        ``None`` for the per-entity pipelines the order processor scores (fraud, churn).

        Examples
        --------
        >>> PipelineSpec.shipped("search_ranking").family, PipelineSpec.shipped("fraud_detection").family
        ('ranking', None)
        """
        return _family_of(self.model.task, {"source": self.data.source})

    @property
    def spec_hash(self) -> str:
        """The sha256 (hex) of the spec's canonical JSON (sorted keys, defaults filled in)."""
        dumped = self.model_dump(mode="json")
        if dumped["training"]["mini_batch"] is None:  # per-event specs hash as before the setting existed
            del dumped["training"]["mini_batch"]
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "pipeline spec") -> PipelineSpec:
        """Validate ``data``; ``source`` (e.g. the file name) starts every error line.

        Raises
        ------
        ConfigError
            One line per problem: ``source: field.path: what is wrong; what is allowed``.
        """
        if not isinstance(data, Mapping):
            msg = f"{source}: a pipeline spec is a mapping (name, version, data, model, ...); got {data!r}"
            raise ConfigError(msg)
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            lines = [_format_error(source, err) for err in exc.errors()]
            raise ConfigError("\n".join(lines)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineSpec:
        """Load and validate the YAML file at ``path`` (duplicate keys are errors)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"{path}: cannot read the pipeline spec ({exc.strerror}); check the path"
            raise ConfigError(msg) from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            msg = f"{path}: {where}invalid YAML: {problem}"
            raise ConfigError(msg) from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def shipped(cls, name: str) -> PipelineSpec:
        """Load the pipeline ``name`` shipped in ``config/pipelines``.

        Examples
        --------
        >>> PipelineSpec.shipped("fraud_detection").data.entity
        'order'
        """
        known = shipped_names()
        if name not in known:
            msg = f"no shipped pipeline {name!r}; shipped: {', '.join(known)}{_suggest(name, known)}"
            raise ConfigError(msg)
        return cls.from_yaml(_PIPELINES_DIR / f"{name}.yaml")


_PIPELINES_DIR = Path(__file__).resolve().parent.parent / "config" / "pipelines"


def shipped_names() -> list[str]:
    """Names of the pipelines shipped in ``config/pipelines``."""
    return sorted(p.stem for p in _PIPELINES_DIR.glob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated in one mapping."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping; keep one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _section_fields(loc: tuple[int | str, ...]) -> list[str] | None:
    """Return the allowed keys of the section at ``loc`` (a pydantic error location), if it is one."""
    model: Any = PipelineSpec
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        # an optional section (``X | None``) is its section X
        section = (
            next((a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type)), None)
            if field is not None
            else None
        )
        if section is None or not issubclass(section, BaseModel):
            return None
        model = section
    return list(model.model_fields)


def _format_error(source: str, err: Any) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    path = ".".join(str(p) for p in loc)
    prefix = f"{source}: {path}: " if path else f"{source}: "
    kind, message, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        allowed: list[str] = _section_fields(loc[:-1]) or []
        key = str(loc[-1])
        return f"{prefix}unknown key {key!r}; allowed: {', '.join(allowed)}{_suggest(key, allowed)}"
    if kind == "value_error":
        return prefix + message.removeprefix("Value error, ")
    if kind == "missing":
        keys = _section_fields(loc[:-1])
        hint = f" (keys of this section: {', '.join(keys)})" if keys else ""
        return f"{prefix}required and missing; add it{hint}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        return (
            f"{prefix}{value!r} is not allowed; allowed: {', '.join(options)}{_suggest(str(value), options)}"
        )
    return f"{prefix}{value!r}: {message}"
