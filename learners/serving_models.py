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

from config.errors import ConfigError, HanzoError, ValidationError
from learners.online import OnlineLearner

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

    Examples
    --------
    >>> from river import linear_model
    >>> scorer_for(linear_model.LogisticRegression())({"x": 1.0})
    0.5
    """
    if isinstance(model, OnlineLearner):
        return model.score
    if callable(getattr(model, "predict_proba_one", None)):

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


def check_value(name: str, value: Any) -> None:
    """Refuse a request-time value that is not a finite number, a string or ``None``.

    Examples
    --------
    >>> check_value("order_total", float("nan"))
    Traceback (most recent call last):
    ...
    config.errors.ValidationError: feature 'order_total' = nan is not a finite number; send a finite number or null
    """  # noqa: E501
    if isinstance(value, float) and not math.isfinite(value):
        msg = f"feature {name!r} = {value!r} is not a finite number; send a finite number or null"
        raise ValidationError(msg)
    if value is not None and not isinstance(value, str | int | float):
        msg = f"feature {name!r} = {value!r} is a {type(value).__name__}; send a number, a string or null"
        raise ValidationError(msg)
