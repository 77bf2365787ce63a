"""The values the serving engine hands out and keeps: predictions, served models, scorers.

:class:`learners.serving.ServingEngine` uses them; they hold no I/O.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from river import base, compose

from hanzo.ml.config.errors import ConfigError, HanzoError, ValidationError
from hanzo.ml.learners.online import OnlineLearner

logger = logging.getLogger(__name__)


class UnknownModelError(HanzoError):
    """A prediction named a model the engine does not serve; the message lists those it serves."""


class FeatureReader(Protocol):
    """What the engine needs from :class:`features.FeatureStore`."""

    def get_features_batch(
        self,
        entity: str,
        ids: Sequence[str],
        features: Sequence[str] | None = None,
        as_of_ms: int | None = None,
    ) -> list[dict[str, float | None]]:
        """Features of many entities of one kind, one dict per id."""
        ...

    def list_features(self) -> Sequence[Any]:
        """Every feature, with ``name``, ``entity`` and ``kind``."""
        ...


@dataclass(frozen=True)
class Prediction:
    """One answer of :meth:`ServingEngine.predict`.

    ``features`` is the exact vector the model scored (``None`` values left out, as the scoring agent
    does); ``ignored`` names request keys that are not among the model's features. ``entity_found`` is
    ``None`` because the feature store's batched read gives an unknown entity its stated defaults
    without telling it apart from a known one.
    """

    score: float
    model: str
    version: str | None
    cached: bool
    features: dict[str, Any]
    entity: str
    entity_id: str
    entity_found: bool | None = None
    ignored: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``POST /predict/{model}`` returns)."""
        return {
            "score": self.score,
            "model": self.model,
            "version": self.version,
            "cached": self.cached,
            "features": dict(self.features),
            "entity": self.entity,
            "entity_id": self.entity_id,
            "entity_found": self.entity_found,
            "ignored": list(self.ignored),
        }


@dataclass(frozen=True)
class ServedModel:
    """A model the engine serves: one immutable value, replaced whole on reload."""

    name: str
    model: Any
    features: tuple[str, ...]
    entity: str
    version: str | None
    sha256: str | None
    alias: str | None
    generation: int
    stored: tuple[str, ...]
    scorer: Callable[[dict[str, Any]], float] = field(repr=False)
    loaded_at: float = 0.0
    id_key: str = ""  # the request key naming the entity, ``<entity>_id`` (the engine sets it)
    feature_set: frozenset[str] = field(default=frozenset(), repr=False)

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` says about it."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "entity": self.entity,
            "features": list(self.features),
            "stored_features": list(self.stored),
            "sha256": self.sha256,
            "loaded_at": self.loaded_at,
        }


@dataclass
class Request:
    """One waiting prediction: the model's name, the entity id, the request-time values, its future."""

    name: str
    entity_id: str
    values: dict[str, Any]
    ignored: tuple[str, ...]
    future: asyncio.Future[Prediction] | None = None


def scorer_for(model: Any) -> Callable[[dict[str, Any]], float]:
    """The function giving the score of one feature dict: ``OnlineLearner.score``, else River's protocol.

    River pipelines get the flat form of :func:`flat_scorer` (same result, a fraction of the calls).

    Examples
    --------
    >>> from river import linear_model
    >>> scorer_for(linear_model.LogisticRegression())({"x": 1.0})
    0.5
    """
    slow = _river_scorer(model)
    return flat_scorer(model, slow) or slow


def _river_scorer(model: Any) -> Callable[[dict[str, Any]], float]:
    if isinstance(model, OnlineLearner):
        return model.score
    # a pipeline has every method; its last step says which one answers
    last = list(model.steps.values())[-1] if isinstance(model, compose.Pipeline) and model.steps else model
    if callable(getattr(last, "predict_proba_one", None)):

        def proba(x: dict[str, Any]) -> float:
            p = model.predict_proba_one(x)
            return float(p.get(True, p.get(1, 0.0)))

        return proba
    if callable(getattr(model, "predict_one", None)):

        def value(x: dict[str, Any]) -> float:
            y = model.predict_one(x)
            return float(y) if y is not None else 0.0

        return value
    msg = f"cannot serve a {type(model).__name__}: it has neither predict_proba_one nor predict_one"
    raise ConfigError(msg)


Transform = Callable[[dict[str, Any]], dict[str, Any]]


def _flat_transform(step: Any) -> Transform | None:
    """One function doing what ``step.transform_one`` does, without the composition layers in between."""
    if isinstance(step, compose.Select):
        keys: Any = step.keys

        def select(x: dict[str, Any]) -> dict[str, Any]:
            return {i: x[i] for i in keys}  # River's Select.transform_one, the same set iterated

        return select
    if isinstance(step, compose.TransformerUnion):
        parts = [_flat_transform(t) for t in reversed(step.transformers.values())]
        if any(f is None for f in parts):
            return None
        funcs = [f for f in parts if f is not None]

        def union(x: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for f in funcs:  # reversed and updated in turn: the first transformer wins, as in River
                out.update(f(x))
            return out

        return union
    if isinstance(step, compose.Pipeline):
        return _chain(list(step.steps.values()))
    if isinstance(step, base.Transformer) and not isinstance(step, base.AnomalyDetector | base.AnomalyFilter):
        transform: Transform = step.transform_one  # type: ignore[assignment]
        return transform
    return None


def _chain(steps: list[Any]) -> Transform | None:
    """The flat form of transformers applied one after the other."""
    parts = [_flat_transform(t) for t in steps]
    funcs = [f for f in parts if f is not None]
    if not funcs or len(funcs) < len(parts):
        return None
    if len(funcs) == 1:
        return funcs[0]
    if len(funcs) == 2:
        first, second = funcs

        def pair(x: dict[str, Any]) -> dict[str, Any]:
            return second(first(x))

        return pair

    def chain(x: dict[str, Any]) -> dict[str, Any]:
        for f in funcs:
            x = f(x)
        return x

    return chain


def flat_scorer(
    model: Any, slow: Callable[[dict[str, Any]], float] | None = None
) -> Callable[[dict[str, Any]], float] | None:
    """The score of a River pipeline computed step by step without its composition layers, or ``None``.

    A pipeline of transformers (``Select``, ``TransformerUnion``, nested pipelines, any transformer's
    ``transform_one``) ending in a classifier or regressor is flattened into one function that builds
    the same feature dict, in the same key order, and hands it to the estimator's own
    ``predict_proba_one`` / ``predict_one``: the score is the same float River computes, at about half
    the cost. It reads the model's live state, so a model that keeps learning is scored as it is now.
    Within ``compose.learn_during_predict()``, for an :class:`OnlineLearner` whose model was replaced, or
    when the flat form raises, ``slow`` (River's own call) scores instead and its error is the one raised.

    Examples
    --------
    >>> from river import compose, linear_model, preprocessing
    >>> model = compose.Select("a", "b") | preprocessing.StandardScaler() | linear_model.LogisticRegression()
    >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
    >>> fast = flat_scorer(model)
    >>> fast({"a": 3.0, "b": 1.0}) == model.predict_proba_one({"a": 3.0, "b": 1.0})[True]
    True
    >>> flat_scorer(linear_model.LogisticRegression()) is None  # nothing to flatten
    True
    """
    learner = model if isinstance(model, OnlineLearner) else None
    pipeline = learner.model if learner is not None else model
    if not isinstance(pipeline, compose.Pipeline) or len(pipeline.steps) < 2:
        return None
    *head, last = pipeline.steps.values()
    transform = _chain(head)
    if transform is None or isinstance(last, base.Transformer):
        return None
    regression = learner.task != "classification" if learner is not None else None
    if regression is None:
        regression = not callable(getattr(last, "predict_proba_one", None))
    if regression and not callable(getattr(last, "predict_one", None)):
        return None
    fallback = slow if slow is not None else _river_scorer(model)
    predict = last.predict_one if regression else last.predict_proba_one

    def score(x: dict[str, Any]) -> float:
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT or (
            learner is not None and learner.model is not pipeline
        ):
            return fallback(x)
        try:
            y = predict(transform(x))
            if regression:
                return float(y) if y is not None else 0.0
            return float(y.get(True, y.get(1, 0.0)))
        except Exception:  # River's own call says what is wrong (a missing feature...), or scores it
            return fallback(x)

    return score


def check_value(name: str, value: Any) -> None:
    """Refuse a request-time value that is not a finite number, a string or ``None``.

    Examples
    --------
    >>> check_value("order_total", float("nan"))
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ValidationError: feature 'order_total' = nan is not a finite number; send a finite number or null
    """  # noqa: E501
    if isinstance(value, float) and not math.isfinite(value):
        msg = f"feature {name!r} = {value!r} is not a finite number; send a finite number or null"
        raise ValidationError(msg)
    if value is not None and not isinstance(value, str | int | float):
        msg = f"feature {name!r} = {value!r} is a {type(value).__name__}; send a number, a string or null"
        raise ValidationError(msg)
