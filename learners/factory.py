"""Build one River pipeline (preprocessing + estimator) from a :class:`~config.pipeline.PipelineSpec`.

The model table (``model.type`` in a pipeline spec -> River estimator). Where a type names two estimators,
``model.task`` picks one; the hyperparameters of the spec go to the estimator (or, for ensembles, to the
ensemble first and then to its base tree). Tree models are bounded by default so they do not grow without
bound; any default may be overridden in ``model.hyperparameters``.

| type | classification | regression |
|---|---|---|
| `logistic_regression` | `linear_model.LogisticRegression` | - |
| `linear_regression` | - | `linear_model.LinearRegression` |
| `hoeffding_tree` | `tree.HoeffdingTreeClassifier` | `tree.HoeffdingTreeRegressor` |
| `hoeffding_adaptive_tree` | `tree.HoeffdingAdaptiveTreeClassifier` | `tree.HoeffdingAdaptiveTreeRegressor` |
| `adaptive_random_forest` | `forest.ARFClassifier` | `forest.ARFRegressor` |
| `streaming_random_patches` | `ensemble.SRPClassifier` | `ensemble.SRPRegressor` |
| `sgt` | `tree.SGTClassifier` | `tree.SGTRegressor` |
| `naive_bayes` | `naive_bayes.GaussianNB` | - |
| `amf` | `forest.AMFClassifier` | `forest.AMFRegressor` |
| `knn` | `neighbors.KNNClassifier` | `neighbors.KNNRegressor` |
| `gradient_boosting` | `ensemble.AdaBoostClassifier(tree.HoeffdingTreeClassifier)` | `tree.SGTRegressor` |

Bounds, seeds and renames the factory applies unless the spec sets them:

- Hoeffding trees (plain and adaptive): ``max_depth=12``, ``max_size=32`` MiB, memory checked every
  100,000 examples; adaptive ones ``seed=42``.
- ``adaptive_random_forest`` and the base trees of ``streaming_random_patches``: ``max_depth=12``,
  ``max_size=16`` MiB a tree, ``seed=42``; ``n_estimators`` -> ``n_models``.
- ``sgt``: ``max_depth=8``. ``amf``: ``max_nodes=4096`` a tree, ``seed=42``. ``knn``: River's search window
  (the last 1,000 examples).
- ``logistic_regression`` / ``linear_regression``: ``learning_rate: 0.05`` -> ``optimizer=optim.SGD(0.05)``.
- ``gradient_boosting``: ``n_estimators`` -> ``n_models``, ``max_depth`` -> each base tree's (default 6),
  ``max_size=8`` MiB a tree, ``seed=42``.

River has no gradient-boosted tree ensemble. ``gradient_boosting`` therefore maps to online boosting
(Oza & Russell's AdaBoost, ``ensemble.AdaBoostClassifier``) of bounded Hoeffding trees for classification,
and to a stochastic gradient tree (``tree.SGTRegressor``, trained on gradients and hessians of the loss, one
tree) for regression. :func:`describe_model` says so, and ``hanzo-ml train`` prints it.

The model families (``learners.families``) take River models of other kinds, in :data:`FAMILY_MODELS`:

| type | task | River class | used by |
|---|---|---|---|
| `snarimax` | forecasting | `time_series.SNARIMAX` | ``DemandForecaster`` (one clone per product) |
| `holt_winters` | forecasting | `time_series.HoltWinters` | ``DemandForecaster`` (one clone per product) |
| `biased_mf` | recommendation | `reco.BiasedMF` | ``Recommender`` |
| `funk_mf` | recommendation | `reco.FunkMF` | ``Recommender`` |
| `linucb` | bandit | `bandit.LinUCBDisjoint` (alpha, beta, seed) | ``PriceOptimizer`` |

Their dotted paths work too (``river.time_series.SNARIMAX``; any River forecaster or recommender). The price
optimizer implements disjoint LinUCB itself (see :mod:`learners.families.pricing`), so ``linucb`` takes only
LinUCBDisjoint's ``alpha``, ``beta`` and ``seed``. Family models are built by
:func:`learners.families.build_family`, not by :func:`build_model`.

Any River estimator may also be named by its dotted path (``river.tree.HoeffdingTreeClassifier``); only
the ``river.`` namespace is importable, so a YAML file cannot import arbitrary code. A hyperparameter value
that is a mapping with a ``type`` key (``{type: river.optim.SGD, lr: 0.05}``) is built the same way;
``{type: river.compose.Pipeline, steps: [{type: ...}, ...]}`` builds a pipeline of its steps.

Preprocessing follows ``data.feature_types``: numeric features -> ``preprocessing.StandardScaler``,
categorical -> ``preprocessing.OneHotEncoder``, boolean -> 0/1, each behind ``compose.Select`` and joined
with ``compose.TransformerUnion``; the result is one ``compose.Pipeline``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from river import bandit, base, compose, optim, preprocessing, reco, time_series

from hanzo.ml.config.errors import ConfigError

if TYPE_CHECKING:
    from hanzo.ml.learners.spec import DataSection, PipelineSpec

logger = logging.getLogger(__name__)

__all__ = [
    "FAMILY_MODELS",
    "MODEL_TABLE",
    "ModelEntry",
    "booleans_to_int",
    "build_estimator",
    "build_model",
    "build_preprocessor",
    "check_hyperparameters",
    "describe_model",
    "family_entry",
    "infer_task",
    "resolve_river_class",
    "supports_many",
]

Task = Literal["classification", "regression", "forecasting", "recommendation", "bandit"]

_TREE_BOUNDS: dict[str, Any] = {"max_depth": 12, "max_size": 32.0, "memory_estimate_period": 100_000}
_FOREST_BOUNDS: dict[str, Any] = {"max_depth": 12, "max_size": 16.0, "memory_estimate_period": 100_000}


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model table.

    Parameters
    ----------
    classifier, regressor
        Dotted River paths of the estimator for each task (``None`` when the type has no such task).
    base_classifier, base_regressor
        For ensembles: the dotted path of the base estimator passed as ``model=``.
    renames
        Spec hyperparameter name -> River parameter name (``n_estimators`` -> ``n_models``).
    defaults
        Bounds and seeds applied where the estimator (or its base) takes them and the spec does not set them.
    note
        A sentence for :func:`describe_model`.
    family
        For the model families: task (``forecasting``, ``recommendation``, ``bandit``) -> dotted River path.
    only
        When set, the only hyperparameters honoured (the family's own implementation takes no others).
    """

    classifier: str | None
    regressor: str | None
    base_classifier: str | None = None
    base_regressor: str | None = None
    renames: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    family: Mapping[str, str] = field(default_factory=dict)
    only: tuple[str, ...] | None = None

    def path(self, task: Task) -> str | None:
        """Dotted path of the estimator for ``task``."""
        if task == "classification":
            return self.classifier
        if task == "regression":
            return self.regressor
        return self.family.get(task)

    def base_path(self, task: Task) -> str | None:
        """Dotted path of the base estimator for ``task`` (ensembles only)."""
        return self.base_classifier if task == "classification" else self.base_regressor

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks this type supports."""
        tasks: list[Task] = []
        if self.classifier:
            tasks.append("classification")
        if self.regressor:
            tasks.append("regression")
        tasks.extend(t for t in ("forecasting", "recommendation", "bandit") if t in self.family)
        return tuple(tasks)


_ENSEMBLE_RENAMES = {"n_estimators": "n_models"}
_LINEAR_RENAMES = {"learning_rate": "optimizer"}

MODEL_TABLE: Mapping[str, ModelEntry] = {
    "logistic_regression": ModelEntry("river.linear_model.LogisticRegression", None, renames=_LINEAR_RENAMES),
    "linear_regression": ModelEntry(None, "river.linear_model.LinearRegression", renames=_LINEAR_RENAMES),
    "hoeffding_tree": ModelEntry(
        "river.tree.HoeffdingTreeClassifier", "river.tree.HoeffdingTreeRegressor", defaults=_TREE_BOUNDS
    ),
    "hoeffding_adaptive_tree": ModelEntry(
        "river.tree.HoeffdingAdaptiveTreeClassifier",
        "river.tree.HoeffdingAdaptiveTreeRegressor",
        defaults={**_TREE_BOUNDS, "seed": 42},
    ),
    "adaptive_random_forest": ModelEntry(
        "river.forest.ARFClassifier",
        "river.forest.ARFRegressor",
        renames=_ENSEMBLE_RENAMES,
        defaults={**_FOREST_BOUNDS, "seed": 42},
    ),
    "streaming_random_patches": ModelEntry(
        "river.ensemble.SRPClassifier",
        "river.ensemble.SRPRegressor",
        base_classifier="river.tree.HoeffdingTreeClassifier",
        base_regressor="river.tree.HoeffdingTreeRegressor",
        renames=_ENSEMBLE_RENAMES,
        # grace_period and delta are River's own choices for SRP's base trees.
        defaults={**_FOREST_BOUNDS, "grace_period": 50, "delta": 0.01, "seed": 42},
    ),
    "sgt": ModelEntry("river.tree.SGTClassifier", "river.tree.SGTRegressor", defaults={"max_depth": 8}),
    "naive_bayes": ModelEntry("river.naive_bayes.GaussianNB", None),
    "amf": ModelEntry(
        "river.forest.AMFClassifier", "river.forest.AMFRegressor", defaults={"max_nodes": 4096, "seed": 42}
    ),
    "knn": ModelEntry("river.neighbors.KNNClassifier", "river.neighbors.KNNRegressor"),
    "gradient_boosting": ModelEntry(
        "river.ensemble.AdaBoostClassifier",
        "river.tree.SGTRegressor",
        base_classifier="river.tree.HoeffdingTreeClassifier",
        renames=_ENSEMBLE_RENAMES,
        defaults={"max_depth": 6, "max_size": 8.0, "memory_estimate_period": 100_000, "seed": 42},
        note=(
            "River has no gradient-boosted tree ensemble: for classification this is online boosting "
            "(Oza & Russell's AdaBoost) of bounded Hoeffding trees, n_estimators -> n_models and "
            "max_depth -> each base tree's max_depth; for regression it is one stochastic gradient "
            "tree (SGTRegressor), which takes max_depth but not n_estimators."
        ),
    ),
}
"""The model table: ``model.type`` -> :class:`ModelEntry` (see the module docstring)."""

_PER_PRODUCT = "learners.families.DemandForecaster keeps one clone of it per product"
FAMILY_MODELS: Mapping[str, ModelEntry] = {
    "snarimax": ModelEntry(
        None, None, family={"forecasting": "river.time_series.SNARIMAX"}, note=_PER_PRODUCT
    ),
    "holt_winters": ModelEntry(
        None, None, family={"forecasting": "river.time_series.HoltWinters"}, note=_PER_PRODUCT
    ),
    "biased_mf": ModelEntry(None, None, family={"recommendation": "river.reco.BiasedMF"}),
    "funk_mf": ModelEntry(None, None, family={"recommendation": "river.reco.FunkMF"}),
    "linucb": ModelEntry(
        None,
        None,
        family={"bandit": "river.bandit.LinUCBDisjoint"},
        only=("alpha", "beta", "seed"),
        note=(
            "learners.families.PriceOptimizer: disjoint LinUCB, one BayesianLinearRegression(alpha, beta) "
            "per price point; the bound uses the posterior sd of the expected reward only"
        ),
    ),
}
"""The model families' table: ``model.type`` -> :class:`ModelEntry` (see the module docstring)."""


# -- resolving names --


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_type_message(model_type: object) -> str:
    """Say that ``model_type`` is neither a table key nor a ``river.`` path, and suggest a close match."""
    known = [*MODEL_TABLE, *FAMILY_MODELS]
    return (
        f"{model_type!r} is not a known model type; known: {', '.join(known)}, "
        "or a dotted River path such as 'river.tree.HoeffdingTreeClassifier'"
        f"{_suggest(str(model_type), known)}"
    )


def resolve_river_class(path: str) -> type:
    """Import the class at dotted ``path``, which must lie under the ``river.`` namespace.

    Raises
    ------
    ConfigError
        When the path is outside ``river.``, names a private member, or does not resolve to a class.

    Examples
    --------
    >>> resolve_river_class("river.tree.HoeffdingTreeClassifier").__name__
    'HoeffdingTreeClassifier'
    """
    parts = path.split(".")
    if parts[0] != "river" or len(parts) < 3 or any(not p.isidentifier() or p.startswith("_") for p in parts):
        msg = (
            f"{path!r} is not an importable River class; only public names under 'river.' are allowed "
            "(e.g. 'river.tree.HoeffdingTreeClassifier')"
        )
        raise ConfigError(msg)
    module_name, attr = ".".join(parts[:-1]), parts[-1]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        msg = (
            f"{path!r}: River has no module {module_name!r}; check the spelling against River's API reference"
        )
        raise ConfigError(msg) from None
    obj = getattr(module, attr, None)
    if not inspect.isclass(obj):
        public = [n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n))]
        msg = f"{path!r}: {module_name} has no class {attr!r}{_suggest(attr, public)}"
        raise ConfigError(msg)
    return obj


def _task_of_class(cls: type) -> Task | None:
    if issubclass(cls, base.Classifier) and not issubclass(cls, base.Regressor):
        return "classification"
    if issubclass(cls, base.Regressor) and not issubclass(cls, base.Classifier):
        return "regression"
    return None


def family_entry(model_type: str) -> ModelEntry | None:
    """The :data:`FAMILY_MODELS` entry of ``model_type`` (a key or a dotted River path), else ``None``.

    A dotted River forecaster or recommender not in the table gets an entry of its own; a River bandit
    policy other than ``LinUCBDisjoint`` raises :class:`ConfigError` (the price optimizer is LinUCB).

    Examples
    --------
    >>> family_entry("river.reco.BiasedMF").tasks, family_entry("logistic_regression")
    (('recommendation',), None)
    """
    entry = FAMILY_MODELS.get(model_type)
    if entry is not None:
        return entry
    if not model_type.startswith("river."):
        return None
    for known in FAMILY_MODELS.values():
        if model_type in known.family.values():
            return known
    cls = resolve_river_class(model_type)
    if issubclass(cls, time_series.base.Forecaster):
        return ModelEntry(None, None, family={"forecasting": model_type}, note=_PER_PRODUCT)
    if issubclass(cls, reco.base.Ranker):
        return ModelEntry(None, None, family={"recommendation": model_type})
    if issubclass(cls, bandit.base.Policy):
        msg = (
            f"{model_type!r}: the price optimizer is a contextual disjoint LinUCB; "
            "use type linucb (or 'river.bandit.LinUCBDisjoint')"
        )
        raise ConfigError(msg)
    return None


def infer_task(model_type: str) -> Task | None:
    """Return the task ``model_type`` implies, or ``None`` when it supports both.

    Raises
    ------
    ConfigError
        When ``model_type`` is unknown, or a dotted path is not a River classifier or regressor.

    Examples
    --------
    >>> infer_task("logistic_regression"), infer_task("hoeffding_tree")
    ('classification', None)
    >>> infer_task("river.linear_model.LinearRegression")
    'regression'
    """
    entry = MODEL_TABLE.get(model_type)
    if entry is not None:
        return entry.tasks[0] if len(entry.tasks) == 1 else None
    if not model_type.startswith("river.") and model_type not in FAMILY_MODELS:
        raise ConfigError(unknown_type_message(model_type))
    family = family_entry(model_type)
    if family is not None:
        return family.tasks[0]
    cls = resolve_river_class(model_type)
    if not issubclass(cls, base.Classifier | base.Regressor):
        msg = (
            f"{model_type!r} is not a River classifier or regressor (nor a forecaster or recommender); "
            "pick an estimator with learn_one and predict_one"
        )
        raise ConfigError(msg)
    return _task_of_class(cls)


def _entry(model_type: str, task: Task) -> ModelEntry:
    entry = MODEL_TABLE.get(model_type) or family_entry(model_type)
    if entry is None:
        infer_task(model_type)  # raises for unknown types and non-estimators
        entry = ModelEntry(
            model_type if task == "classification" else None, model_type if task == "regression" else None
        )
    if entry.path(task) is None:
        msg = f"model type {model_type!r} has no {task} estimator; it supports: {', '.join(entry.tasks)}"
        raise ConfigError(msg)
    return entry


# -- hyperparameters --


def _parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    params = dict(inspect.signature(cls).parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        n: p
        for n, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    return named, var_kw


@dataclass
class _Plan:
    """Where each hyperparameter goes: the estimator and, for ensembles, its base estimator."""

    cls: type
    kwargs: dict[str, Any]
    base_cls: type | None = None
    base_kwargs: dict[str, Any] = field(default_factory=dict)
    mapped: dict[str, str] = field(default_factory=dict)


def _plan(model_type: str, task: Task, hyperparameters: Mapping[str, Any]) -> _Plan:
    entry = _entry(model_type, task)
    path = entry.path(task)
    assert path is not None  # checked by _entry
    cls = resolve_river_class(path)
    base_path = entry.base_path(task)
    base_cls = resolve_river_class(base_path) if base_path else None
    params, var_kw = _parameters(cls)
    if entry.only is not None:
        params, var_kw = {n: p for n, p in params.items() if n in entry.only}, False
    if base_cls is not None:
        params.pop("model", None)
    base_params = _parameters(base_cls)[0] if base_cls is not None else {}
    plan = _Plan(cls, {}, base_cls)

    renamed: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in hyperparameters.items():
        target = entry.renames.get(name, name)
        if target in params or target in base_params:
            if target in renamed:
                msg = (
                    f"{model_type}: hyperparameters {origin[target]!r} and {name!r} both set {target!r}; "
                    "keep one"
                )
                raise ConfigError(msg)
            renamed[target] = value
            origin[target] = name
            if target != name:
                plan.mapped[name] = target
        elif var_kw:
            renamed[name] = value
        else:
            allowed = sorted({*params, *base_params, *(r for r, t in entry.renames.items() if t in params)})
            where = path + (f" over {base_path}" if base_path else "")
            msg = (
                f"{model_type}: unknown hyperparameter {name!r} for {where}; allowed: {', '.join(allowed)}"
                f"{_suggest(name, allowed)}"
            )
            raise ConfigError(msg)

    for name, value in entry.defaults.items():
        if name not in renamed and (name in params or name in base_params):
            renamed[name] = value

    for name, value in renamed.items():
        if name in params or (var_kw and name not in base_params):
            plan.kwargs[name] = value
        else:
            plan.base_kwargs[name] = value
            if name in hyperparameters and base_cls is not None:
                plan.mapped[name] = f"base {base_cls.__name__}.{name}"

    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in plan.kwargs]
    if missing:
        msg = (
            f"{model_type}: {path} needs hyperparameter(s) {', '.join(missing)}; "
            "add them under model.hyperparameters"
        )
        raise ConfigError(msg)
    return plan


def check_hyperparameters(model_type: str, task: Task, hyperparameters: Mapping[str, Any]) -> None:
    """Check the names of ``hyperparameters`` against the estimator's signature (and its base's).

    Raises
    ------
    ConfigError
        Naming the unknown hyperparameter and the allowed ones.

    Examples
    --------
    >>> check_hyperparameters("gradient_boosting", "classification", {"n_estimators": 10, "max_depth": 3})
    >>> check_hyperparameters("knn", "classification", {"k": 3})
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ConfigError: knn: unknown hyperparameter 'k' for river.neighbors.KNNClassifier; ...
    """
    _plan(model_type, task, hyperparameters)


def _build_value(name: str, value: Any, where: str) -> Any:
    """Turn a YAML value into a constructor argument (``{type: river...}`` mappings become objects)."""
    if name == "optimizer" and isinstance(value, int | float) and not isinstance(value, bool):
        return optim.SGD(value)
    if isinstance(value, Mapping) and "type" in value:
        nested_kwargs = {k: v for k, v in value.items() if k != "type"}
        cls = resolve_river_class(str(value["type"]))
        if cls is compose.Pipeline:
            steps = nested_kwargs.get("steps")
            if set(nested_kwargs) != {"steps"} or not isinstance(steps, list) or not steps:
                msg = f"{where}.{name}: river.compose.Pipeline takes one key, steps: a list of {{type: ...}}"
                raise ConfigError(msg)
            return compose.Pipeline(*(_build_value(name, step, f"{where}.{name}.steps") for step in steps))
        params, var_kw = _parameters(cls)
        unknown = [k for k in nested_kwargs if k not in params]
        if unknown and not var_kw:
            msg = (
                f"{where}.{name}: {value['type']} has no parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(params)}"
            )
            raise ConfigError(msg)
        return _construct(
            cls,
            {k: _build_value(k, v, f"{where}.{name}") for k, v in nested_kwargs.items()},
            f"{where}.{name}",
        )
    if isinstance(value, list):
        return [_build_value(name, v, where) for v in value]
    return value


def _construct(cls: type, kwargs: Mapping[str, Any], where: str) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        msg = (
            f"{where}: {cls.__module__}.{cls.__name__}({shown}) failed: {exc}; fix the hyperparameter values"
        )
        raise ConfigError(msg) from exc


def build_estimator(model_type: str, task: Task, hyperparameters: Mapping[str, Any]) -> base.Estimator:
    """Build the bare River estimator for ``model_type`` (no preprocessing), bounded by the table's defaults.

    Examples
    --------
    >>> model = build_estimator("gradient_boosting", "classification", {"n_estimators": 5, "max_depth": 3})
    >>> type(model).__name__, model.n_models, model.model.max_depth, model.model.max_size
    ('AdaBoostClassifier', 5, 3, 8.0)
    """
    plan = _plan(model_type, task, hyperparameters)
    where = f"{model_type}.hyperparameters"
    kwargs = {k: _build_value(k, v, where) for k, v in plan.kwargs.items()}
    if plan.base_cls is not None:
        base_kwargs = {k: _build_value(k, v, where) for k, v in plan.base_kwargs.items()}
        kwargs["model"] = _construct(plan.base_cls, base_kwargs, where)
    estimator: base.Estimator = _construct(plan.cls, kwargs, where)
    return estimator


# -- preprocessing and the pipeline --


def _truthy(value: Any) -> int:
    if isinstance(value, str):
        return int(value.strip().lower() in {"1", "true", "yes", "y", "t"})
    return int(bool(value))


def booleans_to_int(x: Any) -> Any:
    """Map boolean features to 0/1 (a dict for one example, a data frame for a mini-batch).

    Examples
    --------
    >>> booleans_to_int({"country_mismatch": True, "gift": "false", "missing": None})
    {'country_mismatch': 1, 'gift': 0}
    """
    if isinstance(x, dict):
        return {k: _truthy(v) for k, v in x.items() if v is not None}
    return x.astype(int)


def build_preprocessor(data: DataSection) -> base.Transformer:
    """Build the preprocessing for ``data.features`` by their ``data.feature_types``.

    Numeric features are standardised, categorical ones one-hot encoded and boolean ones mapped to 0/1;
    each group goes through ``compose.Select`` and the groups are joined with ``compose.TransformerUnion``.
    """
    groups: dict[str, list[str]] = {"numeric": [], "categorical": [], "boolean": []}
    for feature in data.features:
        groups[data.feature_type(feature)].append(feature)
    parts: list[Any] = []
    if groups["numeric"]:
        parts.append(compose.Select(*groups["numeric"]) | preprocessing.StandardScaler())
    if groups["categorical"]:
        parts.append(compose.Select(*groups["categorical"]) | preprocessing.OneHotEncoder())
    if groups["boolean"]:
        parts.append(compose.Select(*groups["boolean"]) | compose.FuncTransformer(booleans_to_int))
    if len(parts) == 1:
        single: base.Transformer = parts[0]
        return single
    return compose.TransformerUnion(*parts)


def build_model(spec: PipelineSpec) -> compose.Pipeline:
    """Build the spec's model: preprocessing by feature type, then the estimator, as one River pipeline.

    The result has ``learn_one`` and ``predict_proba_one`` (classification) or ``predict_one`` (regression);
    see :func:`supports_many` for the mini-batch methods.

    Examples
    --------
    >>> from hanzo.ml.learners.spec import PipelineSpec
    >>> spec = PipelineSpec.from_dict({
    ...     "name": "demo", "version": "0.1.0",
    ...     "data": {"source": "orders", "features": ["total", "method"], "label": "fraud",
    ...              "feature_types": {"method": "categorical"}},
    ...     "model": {"type": "logistic_regression"},
    ...     "evaluation": {"metrics": ["auc"]},
    ... })
    >>> model = build_model(spec)
    >>> model.learn_one({"total": 12.5, "method": "card"}, True)
    >>> sorted(model.predict_proba_one({"total": 40.0, "method": "paypal"}))
    [False, True]
    """
    assert spec.model.task is not None  # the spec fills the task in
    if spec.model.task not in ("classification", "regression"):
        msg = (
            f"{spec.name}: a {spec.model.task} model is not a feature pipeline; "
            "build it with learners.families.build_family"
        )
        raise ConfigError(msg)
    estimator = build_estimator(spec.model.type, spec.model.task, spec.model.hyperparameters)
    pipeline = compose.Pipeline(build_preprocessor(spec.data), estimator)
    logger.debug("built model for %s %s: %s", spec.name, spec.version, describe_model(spec))
    return pipeline


def _has_many(step: Any) -> bool:
    if isinstance(step, compose.Pipeline):
        return all(_has_many(s) for s in step.steps.values())
    if isinstance(step, compose.TransformerUnion):
        return all(_has_many(s) for s in step.transformers.values())
    if isinstance(step, compose.Select | compose.FuncTransformer):
        return True
    if isinstance(step, base.Transformer):
        return hasattr(step, "learn_many") and hasattr(step, "transform_many")
    return hasattr(step, "learn_many") and (
        hasattr(step, "predict_proba_many") or hasattr(step, "predict_many")
    )


def supports_many(model: Any, require_backend: bool = True) -> bool:
    """Whether ``model`` can ``learn_many`` / ``predict_proba_many`` on mini-batches.

    Every step must have the mini-batch methods (linear models do, trees do not), and with
    ``require_backend`` a data-frame library River accepts (pandas or polars) must be importable.

    Examples
    --------
    >>> from river import linear_model, preprocessing, tree
    >>> linear = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    >>> supports_many(linear, require_backend=False)
    True
    >>> supports_many(preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier(), require_backend=False)
    False
    """
    if not _has_many(model):
        return False
    if not require_backend:
        return True
    for module in ("pandas", "polars"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return True
    return False


def _fmt_value(value: Any) -> str:
    if isinstance(value, Mapping) and "type" in value:
        return f"{value['type']}({_fmt_kwargs({k: v for k, v in value.items() if k != 'type'})})"
    return repr(value)


def _fmt_kwargs(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(kwargs.items()))


def describe_model(spec: PipelineSpec) -> str:
    """Say in a few lines which River pipeline :func:`build_model` builds for ``spec`` and why.

    Examples
    --------
    >>> from hanzo.ml.learners.spec import PipelineSpec
    >>> spec = PipelineSpec.from_dict({
    ...     "name": "churn", "version": "1.0.0",
    ...     "data": {"source": "customers", "features": ["clv"], "label": "churned_90d"},
    ...     "model": {"type": "gradient_boosting", "hyperparameters": {"n_estimators": 100, "max_depth": 6}},
    ... })
    >>> print(describe_model(spec))  # doctest: +NORMALIZE_WHITESPACE
    gradient_boosting (classification) -> river.ensemble.AdaBoostClassifier(n_models=100, seed=42)
      over river.tree.HoeffdingTreeClassifier(max_depth=6, max_size=8.0, memory_estimate_period=100000)
      hyperparameters mapped: n_estimators -> n_models, max_depth -> base HoeffdingTreeClassifier.max_depth
      note: River has no gradient-boosted tree ensemble: ...
      preprocessing: StandardScaler on clv
    """
    task = spec.model.task
    assert task is not None  # the spec fills the task in
    entry = _entry(spec.model.type, task)
    plan = _plan(spec.model.type, task, spec.model.hyperparameters)
    lines = [f"{spec.model.type} ({task}) -> {entry.path(task)}({_fmt_kwargs(plan.kwargs)})"]
    base_path = entry.base_path(task)
    if base_path:
        lines.append(f"  over {base_path}({_fmt_kwargs(plan.base_kwargs)})")
    if plan.mapped:
        lines.append("  hyperparameters mapped: " + ", ".join(f"{k} -> {v}" for k, v in plan.mapped.items()))
    if entry.note:
        lines.append(f"  note: {entry.note}")
    if task not in ("classification", "regression"):
        return "\n".join(lines)
    groups: dict[str, list[str]] = {}
    for feature in spec.data.features:
        groups.setdefault(spec.data.feature_type(feature), []).append(feature)
    how = {"numeric": "StandardScaler", "categorical": "OneHotEncoder", "boolean": "0/1"}
    lines.append(
        "  preprocessing: "
        + "; ".join(f"{how[kind]} on {', '.join(names)}" for kind, names in groups.items())
    )
    return "\n".join(lines)
