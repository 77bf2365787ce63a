"""The online learner: the single writer of one model, learning from labels joined to stored features.

It speaks River's protocol (``learn_one``, ``predict_proba_one``/``predict_one``) so a snapshot loaded from
the registry is usable as a plain River model, and it carries what recovery needs: the label topic
offsets it has consumed, the ids of labels already learned (a duplicate label is never learned twice)
and the labels still waiting for their feature vector.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from river import drift

logger = logging.getLogger(__name__)

_EPS = 1e-15


@dataclass(frozen=True)
class LearnOutcome:
    """What learning one label did."""

    y_pred: float
    loss: float
    drift: bool


def _finite(x: dict[str, Any]) -> bool:
    return all(not (isinstance(v, float) and not math.isfinite(v)) for v in x.values())


class OnlineLearner:
    """Predict-then-learn on labelled examples; the single writer of one model.

    Parameters
    ----------
    name
        The pipeline name (also the registry name).
    model
        Any River estimator (usually a pipeline of preprocessing and a classifier or regressor).
    metrics
        An object with ``update(y_true, y_pred)`` and ``get()`` (``learners.metrics.MetricSet``), or None.
    task
        ``classification`` (the score is the probability of the positive class) or ``regression``.
    dedupe_horizon_ms
        How long (in label event time) learned label ids are remembered for dedupe.

    Examples
    --------
    >>> from river import linear_model, preprocessing
    >>> learner = OnlineLearner("fraud", preprocessing.StandardScaler() | linear_model.LogisticRegression())
    >>> learner.score({"total": 10.0})
    0.5
    >>> outcome = learner.learn_label("l1", {"total": 900.0}, 1.0, event_time_ms=1_700_000_000_000)
    >>> round(outcome.y_pred, 2), learner.examples_learned
    (0.5, 1)
    >>> learner.learn_label("l1", {"total": 900.0}, 1.0, event_time_ms=1_700_000_000_000) is None  # duplicate
    True
    """

    def __init__(
        self,
        name: str,
        model: Any,
        metrics: Any | None = None,
        task: str = "classification",
        dedupe_horizon_ms: int = 120 * 86_400_000,
    ) -> None:
        self.name = name
        self.model = model
        self.metrics = metrics
        self.task = task
        self.dedupe_horizon_ms = dedupe_horizon_ms
        self._reset()

    def _reset(self) -> None:
        self.examples_learned = 0
        self.offsets: dict[str, int] = {}  # "topic/partition" -> next offset to consume
        self.version: str | None = None  # the registry version this state was last saved as
        self.loss_detector = drift.ADWIN()
        self.drift_alarms = 0
        self.rejected_non_finite = 0
        self.pending: dict[str, tuple[Any, float]] = {}  # label_id -> (label, first seen, monotonic s)
        self._seen: dict[str, int] = {}
        self._watermark_ms = 0

    # River's protocol, so a snapshot is a drop-in River model.
    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        """Learn one example (no metrics, no dedupe): River's protocol."""
        self.model.learn_one(x, y)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        """Class probabilities: River's protocol."""
        return dict(self.model.predict_proba_one(x))

    def predict_one(self, x: dict[str, Any]) -> Any:
        """The predicted class or value: River's protocol."""
        return self.model.predict_one(x)

    def score(self, x: dict[str, Any]) -> float:
        """The number a shop reads: P(positive) for classification, the prediction for regression."""
        return self._predict(x)[0]

    def learn_label(
        self, label_id: str, x: dict[str, Any], y: float, event_time_ms: int
    ) -> LearnOutcome | None:
        """Predict, then learn, one labelled example; None when this label id was already learned.

        The prediction made here (before learning) feeds the progressive metrics, as River's
        ``progressive_val_score`` does.
        """
        if label_id in self._seen:
            return None
        if not _finite(x) or not math.isfinite(y):
            self.rejected_non_finite += 1
            return None
        target: Any = bool(y) if self.task == "classification" else float(y)
        y_pred, has_prediction = self._predict(x)
        if self.metrics is not None and has_prediction:
            # like River's progressive_val_score, a model with no prediction yet (a tree before its first
            # example answers {}) is not scored
            self.metrics.update(target, y_pred)
        loss = self._loss(target, y_pred)
        self.loss_detector.update(loss)
        drifted = bool(self.loss_detector.drift_detected)
        if drifted:
            self.drift_alarms += 1
        self.model.learn_one(x, target)
        self.examples_learned += 1
        self._remember(label_id, event_time_ms)
        return LearnOutcome(y_pred=y_pred, loss=loss, drift=drifted)

    def _predict(self, x: dict[str, Any]) -> tuple[float, bool]:
        """The score and whether the model gave a prediction at all."""
        if self.task == "classification":
            proba = self.model.predict_proba_one(x)
            return float(proba.get(True, proba.get(1, 0.0))), bool(proba)
        y = self.model.predict_one(x)
        return (float(y), True) if y is not None else (0.0, False)

    def _loss(self, y: Any, y_pred: float) -> float:
        if self.task == "classification":
            p = min(max(y_pred, _EPS), 1 - _EPS)
            return -math.log(p if y else 1 - p)
        return abs(float(y) - y_pred)

    def _remember(self, label_id: str, event_time_ms: int) -> None:
        self._seen[label_id] = event_time_ms
        self._watermark_ms = max(self._watermark_ms, event_time_ms)
        if len(self._seen) % 10_000 == 0:
            cutoff = self._watermark_ms - self.dedupe_horizon_ms
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    def seen(self, label_id: str) -> bool:
        """Whether this label id was already learned."""
        return label_id in self._seen

    def metric_values(self) -> dict[str, dict[str, float]]:
        """Current metrics (``{"cumulative": {...}, "rolling": {...}}``), empty without a metric set."""
        return dict(self.metrics.get()) if self.metrics is not None else {}

    def __repr__(self) -> str:
        return f"OnlineLearner({self.name!r}, version={self.version!r}, examples={self.examples_learned})"
