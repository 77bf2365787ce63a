"""Mini-batch learning (``training.mini_batch: {size: N}``): River's ``learn_many`` on chunks of labels.

Per-event learning (the default) predicts each labelled example with the model as it is, then learns it
with ``learn_one``. With ``training.mini_batch`` set, the label joiner hands the labels it joined in one
batch to :func:`learn_labels_in_chunks`, which learns them in chunks of up to ``size`` labels:

1. the chunk is predicted with the model as it was *before* the chunk (River's ``predict_proba_many``,
   ``predict_many`` for a regressor): every example is still predicted before it is learned, so the
   progressive (prequential) metric stays honest, but the examples of a chunk do not see each other;
2. those predictions update the metrics and the loss drift detector in label order, as per-event
   learning does;
3. the chunk is learned with one ``learn_many`` (for a linear model: one gradient step on the chunk's
   mean gradient instead of ``size`` steps), and each label id is remembered for dedupe.

The guarantees of per-event learning hold: a label id is learned at most once (ids learned before and ids
repeated inside the batch are skipped), non-finite examples are rejected and counted, and a chunk never
spans two joiner batches, so the label offsets a snapshot stores cover exactly the labels it learned.
The trade-off (throughput against the progressive metric) is what ``bench.learners`` reports.

Only models whose every step has the mini-batch methods can do this (``learners.factory.supports_many``:
River's linear models do, trees do not); :class:`~learners.spec.PipelineSpec` refuses the setting for
any other model when the spec is loaded. River takes the chunk as a pandas data frame.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.online import LearnOutcome, OnlineLearner, _finite

if TYPE_CHECKING:
    from hanzo.ml.learners.spec import PipelineSpec

logger = logging.getLogger(__name__)

__all__ = ["LabelItem", "check_mini_batch", "learn_labels_in_chunks", "mini_batch_size"]

LabelItem = tuple[str, dict[str, Any], float, int]
"""``(label_id, x, y, event_time_ms)``: one joined label, as :meth:`OnlineLearner.learn_label` takes it."""


def mini_batch_size(spec: PipelineSpec) -> int:
    """Labels per ``learn_many`` chunk for ``spec``; 0 means per-event learning (the default).

    Examples
    --------
    >>> from hanzo.ml.learners.spec import PipelineSpec
    >>> spec = PipelineSpec.shipped("fraud_detection")
    >>> mini_batch_size(spec)
    0
    >>> data = {**spec.model_dump(), "training": {"mini_batch": {"size": 64}}}
    >>> mini_batch_size(PipelineSpec.from_dict(data))
    64
    """
    setting = spec.training.mini_batch
    return 0 if setting is None else setting.size


def check_mini_batch(spec: PipelineSpec) -> int:
    """:func:`mini_batch_size`, after checking that River's data-frame backend (pandas) imports.

    The spec itself already refused a model without ``learn_many``; this checks the installation, once,
    where the learner is wired (the worker and ``hanzo-ml train``).

    Raises
    ------
    ConfigError
        Naming the pipeline, the setting and the fix.
    """
    size = mini_batch_size(spec)
    if size:
        try:
            importlib.import_module("pandas")
        except ImportError as exc:
            msg = (
                f"pipeline {spec.name!r}: training.mini_batch: {{size: {size}}} learns with River's "
                "learn_many, which takes pandas data frames, and pandas does not import; "
                "pip install 'pandas>=2.2,<3' (a dependency of hanzo-ml), or remove training.mini_batch"
            )
            raise ConfigError(msg) from exc
        logger.info("%s learns in mini-batches of up to %d labels (River learn_many)", spec.name, size)
    return size


def learn_labels_in_chunks(
    learner: OnlineLearner, items: Sequence[LabelItem], size: int
) -> list[LearnOutcome | None]:
    """Learn ``items`` (in order) in chunks of up to ``size`` labels, each predicted before it is learned.

    Every chunk is predicted with the model as it was before the chunk (``predict_proba_many``), the
    predictions update the learner's metrics and loss detector in order, then the chunk is learned with
    one ``learn_many``. Returns one outcome per item, in the order of ``items``: None where
    :meth:`OnlineLearner.learn_label` would return None (a label id learned before or earlier in
    ``items``, or a non-finite example, which is counted in ``rejected_non_finite``).

    Examples
    --------
    >>> from river import linear_model, preprocessing
    >>> learner = OnlineLearner("fraud", preprocessing.StandardScaler() | linear_model.LogisticRegression())
    >>> items = [("l1", {"total": 900.0}, 1.0, 1), ("l2", {"total": 20.0}, 0.0, 2)]
    >>> items += [("l3", {"total": 40.0}, 0.0, 3), ("l1", {"total": 900.0}, 1.0, 1)]  # l1 comes twice
    >>> outcomes = learn_labels_in_chunks(learner, items, size=2)
    >>> [None if o is None else round(o.y_pred, 3) for o in outcomes]  # l1, l2: the initial model
    [0.5, 0.5, 0.499, None]
    >>> learner.examples_learned, learner.seen("l3")
    (3, True)
    """
    if size < 1:
        msg = f"learn_labels_in_chunks: size {size!r}; use a whole number of labels per chunk, at least 1"
        raise ValueError(msg)
    out: list[LearnOutcome | None] = [None] * len(items)
    chunk: list[int] = []
    taken: set[str] = set()
    for i, (label_id, x, y, _) in enumerate(items):
        if label_id in taken or learner.seen(label_id):
            continue
        if not (_finite(x) and math.isfinite(y)):
            learner.rejected_non_finite += 1
            continue
        taken.add(label_id)
        chunk.append(i)
        if len(chunk) == size:
            _learn_chunk(learner, items, chunk, out)
            chunk = []
    if chunk:
        _learn_chunk(learner, items, chunk, out)
    return out


def _predict_many(learner: OnlineLearner, frame: Any) -> list[float]:
    """The score of each row by the model as it is: P(True) for a classifier, the value for a regressor."""
    if learner.task == "classification":
        proba = learner.model.predict_proba_many(frame)
        for positive in (True, 1):
            if positive in proba.columns:
                return [float(p) for p in proba[positive]]
        return [0.0] * len(frame)  # like learn_label: no positive class seen yet scores 0
    return [float(v) for v in learner.model.predict_many(frame)]


def _learn_chunk(
    learner: OnlineLearner, items: Sequence[LabelItem], chunk: Sequence[int], out: list[LearnOutcome | None]
) -> None:
    import pandas as pd  # River's learn_many takes a data frame; checked by check_mini_batch

    xs = [items[i][1] for i in chunk]
    targets = [learner.target(items[i][2]) for i in chunk]
    frame = pd.DataFrame(xs)
    if frame.isna().to_numpy().any():
        # a feature missing from some rows is NaN in the frame, which learn_many would learn silently; per
        # event River's Select raises KeyError, so such a chunk goes per event and fails the same way (the
        # scorer stores every feature, imputing 0, so a stored vector never misses one)
        logger.warning("%s: a chunk of %d labels misses features; learned per event", learner.name, len(xs))
        for i in chunk:
            out[i] = learner.learn_label(*items[i])
        return
    y_preds = _predict_many(learner, frame)  # the model before the chunk: prequential
    metrics, detector = learner.metrics, learner.loss_detector
    for i, target, y_pred in zip(chunk, targets, y_preds, strict=True):
        if metrics is not None:
            metrics.update(target, y_pred)
        loss = learner._loss(target, y_pred)  # the same loss as learn_label
        detector.update(loss)
        drifted = bool(detector.drift_detected)
        if drifted:
            learner.drift_alarms += 1
        out[i] = LearnOutcome(y_pred=y_pred, loss=loss, drift=drifted)
    learner.model.learn_many(
        frame, pd.Series(targets, dtype=bool if learner.task == "classification" else float)
    )
    learner.examples_learned += len(chunk)
    for i in chunk:
        learner._remember(items[i][0], items[i][3])  # dedupe, with its horizon, as learn_label does
