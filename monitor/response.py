"""What a pipeline does when drift is detected: ``alert``, ``challenger`` or ``rollback``.

The pipeline spec chooses one (``monitoring.drift_response``). Each response is a small policy object with one
pure method, :meth:`DriftResponse.observe`, called by the learner for every labelled example with the
champion's prediction and whether a drift detector alarmed on this example. It returns a :class:`Decision`;
acting on it (swapping the served model, moving a registry alias) stays with the caller, which owns the model
and the registry writes:

* :class:`AlertResponse` records the alarm and does nothing else (the Prometheus alerts tell people).
* :class:`ChallengerResponse` clones the champion at the drift point (``river`` ``clone()``: same
  hyperparameters, no learned state), trains the clone in shadow on the same labelled examples and compares
  both on those examples with a rolling metric; the decision says ``should_promote`` once the challenger beats
  the champion by ``margin`` over at least ``min_examples`` examples.
* :class:`RollbackResponse` finds the version to roll back to: the most recent version that held the alias
  before the current one and whose registered ``metadata["metrics"]`` pass the thresholds.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from river import base as river_base
from river import metrics as river_metrics
from river import utils as river_utils

from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.registry.gate import evaluate_gate
from hanzo.ml.registry.history import alias_stack

if TYPE_CHECKING:
    from hanzo.ml.registry.records import ModelVersion
    from hanzo.ml.registry.registry import Registry

logger = logging.getLogger(__name__)

ResponseKind = Literal["alert", "challenger", "rollback"]
Action = Literal["none", "alert", "challenger_started", "challenger_dropped", "promote", "rollback"]


class Decision(BaseModel):
    """What a :class:`DriftResponse` decided for one example.

    ``action`` is ``"none"`` on an ordinary example. ``should_promote`` is ``True`` (with
    ``action="promote"``) when the challenger won; ``rollback_to`` names the version to roll back to
    (``action="rollback"``). The scores are the rolling metric of the champion and of the challenger over
    the compared examples; ``challenger_pred`` is the challenger's prediction for this example, made before
    it learned it (``None`` while no challenger is on trial).
    """

    model_config = ConfigDict(frozen=True)

    action: Action = "none"
    drift: bool = False
    should_promote: bool = False
    rollback_to: str | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    n_compared: int = 0
    reason: str = ""
    challenger_pred: float | None = None


#: The decision of an ordinary example (frozen, so one instance serves every call).
NO_ACTION = Decision()


class DriftResponse(abc.ABC):
    """The interface of drift responses: :meth:`observe` one labelled example, get a :class:`Decision`."""

    #: The ``monitoring.drift_response`` value that selects this response.
    kind: ResponseKind

    @abc.abstractmethod
    def observe(self, x: Mapping[str, Any], y: Any, champion_pred: float, drift: bool) -> Decision:
        """Take one labelled example.

        Parameters
        ----------
        x
            The feature vector the champion predicted from.
        y
            The label.
        champion_pred
            The champion's prediction for ``x`` (the probability of the positive class for classifiers).
        drift
            Whether a drift detector raised an alarm on this example.
        """


class AlertResponse(DriftResponse):
    """Record drift alarms and do nothing else.

    Examples
    --------
    >>> response = AlertResponse()
    >>> response.observe({"total": 12.0}, True, 0.3, drift=False).action
    'none'
    >>> response.observe({"total": 99.0}, True, 0.2, drift=True).action
    'alert'
    >>> response.n_alarms
    1
    """

    kind: ResponseKind = "alert"

    def __init__(self) -> None:
        self.n_alarms = 0
        self.n_observed = 0

    def observe(self, x: Mapping[str, Any], y: Any, champion_pred: float, drift: bool) -> Decision:
        """Count the example; a drift gives ``action="alert"``."""
        self.n_observed += 1
        if not drift:
            return NO_ACTION
        self.n_alarms += 1
        logger.info("drift response alert: alarm %d at example %d", self.n_alarms, self.n_observed)
        return Decision(action="alert", drift=True, reason="drift alarm recorded")


def _is_classifier(model: Any) -> bool:
    """Whether a River estimator classifies (a pipeline by its last step: all have predict_proba_one)."""
    while hasattr(model, "_last_step"):
        model = model._last_step
    return isinstance(model, river_base.Classifier)


def _proba(model: Any, x: Mapping[str, Any]) -> float:
    """The model's probability of the positive class (``True`` or ``1``), or its prediction for regressors."""
    if _is_classifier(model):
        proba = model.predict_proba_one(x)
        for key in (True, 1):
            if key in proba:
                return float(proba[key])
        return 0.0
    y = model.predict_one(x)
    return float(y) if y is not None else 0.0


class ChallengerResponse(DriftResponse):
    """On drift, train a fresh clone of the champion in shadow and say when it should replace the champion.

    Both models are scored on the same labelled examples, predict-then-learn: the challenger predicts ``x``
    before it learns ``(x, y)``, and the champion's prediction comes from the caller (who keeps training the
    champion as usual). The challenger exists only after a drift alarm; it is dropped when it has not won
    after ``max_examples`` examples. A drift alarm while a challenger is on trial does not restart it.

    Parameters
    ----------
    champion
        The model in production (any River estimator); cloned on drift.
    metric
        A River metric class to compare with (an instance stands for its class); default
        ``river.metrics.LogLoss`` (``river.metrics.Accuracy`` suits trees, whose probabilities can be 0 or 1;
        ``river.metrics.MAE`` regressors). It is computed over a rolling window.
    window
        The rolling window (in examples) of the comparison.
    min_examples
        Examples the challenger must have been compared on before it can be promoted.
    margin
        How much better (in the metric's units) the challenger's rolling score must be.
    max_examples
        Examples after which a challenger that has not won is dropped.

    Examples
    --------
    >>> from river import metrics, tree
    >>> from river.datasets import synth
    >>> champion = tree.HoeffdingTreeClassifier()
    >>> response = ChallengerResponse(champion, metric=metrics.Accuracy, window=500, min_examples=500)
    >>> before = synth.Agrawal(classification_function=0, seed=1).take(3000)
    >>> after = synth.Agrawal(classification_function=4, seed=2).take(3000)
    >>> for i, (x, y) in enumerate([*before, *after]):
    ...     p = champion.predict_proba_one(x).get(True, 0.0)
    ...     decision = response.observe(x, y, p, drift=(i == 3000))
    ...     champion.learn_one(x, y)
    ...     if decision.action != "none":
    ...         print(i, decision.action, f"{decision.champion_score:.2f} {decision.challenger_score:.2f}")
    ...     if decision.should_promote:
    ...         break
    3000 challenger_started 0.00 1.00
    3499 promote 0.49 0.79
    >>> champion = response.promote()  # the challenger takes over

    References
    ----------
    .. [1] Gama, J. et al. (2014). A survey on concept drift adaptation. ACM Computing Surveys 46(4).
    """

    kind: ResponseKind = "challenger"

    def __init__(
        self,
        champion: Any,
        metric: Any = None,
        window: int = 1000,
        min_examples: int = 500,
        margin: float = 0.05,
        max_examples: int = 20_000,
    ) -> None:
        self.champion = champion
        self.metric = metric
        self.window = window
        self.min_examples = min_examples
        self.margin = margin
        self.max_examples = max_examples
        self._reset()

    def _reset(self) -> None:
        if self.window < 1 or self.min_examples < 1 or self.max_examples < self.min_examples:
            msg = (
                f"ChallengerResponse: window={self.window}, min_examples={self.min_examples}, "
                f"max_examples={self.max_examples}: use window >= 1 and 1 <= min_examples <= max_examples"
            )
            raise ConfigError(msg)
        if self.margin < 0:
            msg = f"ChallengerResponse: margin={self.margin} must be >= 0"
            raise ConfigError(msg)
        self.challenger: Any = None
        self.n_compared = 0
        self._champion_metric: Any = None
        self._challenger_metric: Any = None

    def _new_metric(self) -> Any:
        cls = self.metric if self.metric is not None else river_metrics.LogLoss
        return river_utils.Rolling(cls if isinstance(cls, type) else type(cls), window_size=self.window)

    @property
    def bigger_is_better(self) -> bool:
        """Whether a larger score is better for the comparison metric."""
        return bool(self._new_metric().bigger_is_better)

    def _scores(self) -> tuple[float | None, float | None]:
        if self._champion_metric is None or self.n_compared == 0:
            return None, None
        return float(self._champion_metric.get()), float(self._challenger_metric.get())

    def _decision(
        self, action: Action, drift: bool, pred: float, reason: str = "", promote: bool = False
    ) -> Decision:
        champion, challenger = self._scores()
        return Decision(
            action=action,
            drift=drift,
            should_promote=promote,
            champion_score=champion,
            challenger_score=challenger,
            n_compared=self.n_compared,
            reason=reason,
            challenger_pred=pred,
        )

    def _update(self, metric: Any, y: Any, pred: float) -> None:
        if getattr(metric, "requires_labels", False):
            metric.update(y, pred >= 0.5)
        else:
            metric.update(y, pred)

    def observe(self, x: Mapping[str, Any], y: Any, champion_pred: float, drift: bool) -> Decision:
        """Start a challenger on drift; train and compare it; say whether it should be promoted."""
        started = False
        if self.challenger is None:
            if not drift:
                return NO_ACTION
            self.challenger = self.champion.clone()
            self._champion_metric = self._new_metric()
            self._challenger_metric = self._new_metric()
            self.n_compared = 0
            started = True
            logger.info("drift response challenger: training %s in shadow", type(self.challenger).__name__)
        challenger_pred = _proba(self.challenger, x)
        self._update(self._champion_metric, y, champion_pred)
        self._update(self._challenger_metric, y, challenger_pred)
        self.challenger.learn_one(x, y)
        self.n_compared += 1
        champion, challenger = self._scores()
        assert champion is not None and challenger is not None  # noqa: S101 (set just above)
        gain = challenger - champion if self.bigger_is_better else champion - challenger
        if self.n_compared >= self.min_examples and math.isfinite(gain) and gain >= self.margin:
            logger.warning(
                "drift response challenger: challenger beats champion (%.4f vs %.4f) over %d examples",
                challenger,
                champion,
                self.n_compared,
            )
            return self._decision(
                "promote",
                drift,
                challenger_pred,
                f"challenger better by {gain:.4g} over {self.n_compared} examples",
                True,
            )
        if self.n_compared >= self.max_examples:
            decision = self._decision(
                "challenger_dropped",
                drift,
                challenger_pred,
                f"no win by {self.margin} after {self.n_compared} examples",
            )
            self._reset()
            return decision
        if started:
            return self._decision(
                "challenger_started", drift, challenger_pred, "drift alarm: challenger cloned from champion"
            )
        return self._decision("none", drift, challenger_pred)

    def promote(self) -> Any:
        """Make the challenger the champion, end the trial and return the new champion."""
        if self.challenger is None:
            msg = "ChallengerResponse.promote: there is no challenger (no drift alarm started one)"
            raise ConfigError(msg)
        self.champion = self.challenger
        self._reset()
        return self.champion


class RollbackResponse(DriftResponse):
    """On drift, name the registry version to roll back to: the last one with good metrics.

    Candidates are the versions that held ``alias`` before the current one (the alias log, newest first, the
    same stack :meth:`registry.Registry.rollback` walks). The first whose ``metadata["metrics"]`` pass
    ``thresholds`` (as the promotion gate judges them: a maximum for losses, a minimum otherwise) is the
    target. :meth:`apply` moves the alias there.

    Parameters
    ----------
    registry
        The model registry.
    name
        The model's name in the registry.
    thresholds
        Metric -> threshold, e.g. the pipeline's ``evaluation.threshold`` (``{"auc": 0.8}``).
    alias
        The alias that serves the model.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from river import linear_model
    >>> from hanzo.ml.registry import Registry
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     reg = Registry(Path(tmp))
    ...     for version, auc in [("1.0.0", 0.9), ("1.1.0", 0.6), ("1.2.0", 0.88)]:
    ...         meta = {"metrics": {"auc": auc}}
    ...         _ = reg.register(linear_model.LogisticRegression(), "fraud", version, meta)
    ...         _ = reg.promote("fraud", version)
    ...     response = RollbackResponse(reg, "fraud", thresholds={"auc": 0.8})
    ...     decision = response.observe({}, True, 0.4, drift=True)
    ...     decision.action, decision.rollback_to
    ('rollback', '1.0.0')
    """

    kind: ResponseKind = "rollback"

    def __init__(
        self, registry: Registry, name: str, thresholds: Mapping[str, float], alias: str = "production"
    ) -> None:
        self.registry = registry
        self.name = name
        self.thresholds = thresholds
        self.alias = alias
        if not thresholds:
            msg = (
                f"RollbackResponse for model {name!r}: thresholds are empty, so no version can be judged "
                "good; pass the pipeline's evaluation.threshold (e.g. {'auc': 0.8})"
            )
            raise ConfigError(msg)

    def target(self) -> tuple[str | None, str]:
        """Return ``(version, reason)``: the version to roll back to (``None`` if there is none) and why."""
        current = self.registry.aliases(self.name).get(self.alias)
        if current is None:
            return None, f"model {self.name!r} has no alias {self.alias!r}"
        existing = {mv.version for mv in self.registry.list_versions(self.name)}
        stack = [v for v in alias_stack(self.registry.history(self.name), self.alias) if v in existing]
        rejected: list[str] = []
        for version in reversed(stack):
            if version == current:
                continue
            record = self.registry.show(self.name, version)
            metrics = record.metadata.get("metrics")
            if not isinstance(metrics, Mapping):
                rejected.append(f"{version}: no metrics")
                continue
            gate = evaluate_gate(metrics, self.thresholds, drift_active=False)
            if gate.passed:
                return version, f"last good version before {current}: {', '.join(gate.checks[:-1])}"
            rejected.append(f"{version}: {'; '.join(gate.reasons)}")
        skipped = f" (rejected: {'; '.join(rejected)})" if rejected else ""
        return None, f"no earlier version of {self.name!r} with good metrics than {current}{skipped}"

    def observe(self, x: Mapping[str, Any], y: Any, champion_pred: float, drift: bool) -> Decision:
        """On drift, look up the rollback target; without one the decision is an ``alert``."""
        if not drift:
            return NO_ACTION
        version, reason = self.target()
        if version is None:
            logger.warning("drift response rollback: %s", reason)
            return Decision(action="alert", drift=True, reason=reason)
        logger.warning("drift response rollback: %s %s -> %s", self.name, self.alias, version)
        return Decision(action="rollback", drift=True, rollback_to=version, reason=reason)

    def apply(self, decision: Decision) -> ModelVersion:
        """Move the alias to ``decision.rollback_to``, logged as a rollback when it is the previous holder.

        A target further back is set with :meth:`registry.Registry.set_alias` (one move, so no scorer ever
        loads the bad versions in between); the alias log's reason says it was a drift rollback.
        """
        if decision.rollback_to is None:
            msg = f"RollbackResponse.apply: decision {decision.action!r} names no version to roll back to"
            raise RegistryError(msg)
        reason = f"drift response: {decision.reason}"
        current = self.registry.aliases(self.name).get(self.alias)
        existing = {mv.version for mv in self.registry.list_versions(self.name)}
        stack = [v for v in alias_stack(self.registry.history(self.name), self.alias) if v in existing]
        while stack and stack[-1] == current:
            stack.pop()
        if stack and stack[-1] == decision.rollback_to:
            return self.registry.rollback(self.name, self.alias, reason)
        return self.registry.set_alias(self.name, self.alias, decision.rollback_to, reason)


def make_response(
    kind: ResponseKind,
    *,
    champion: Any = None,
    registry: Registry | None = None,
    name: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    alias: str = "production",
    **options: Any,
) -> DriftResponse:
    """Build the response a pipeline's ``monitoring.drift_response`` names.

    ``challenger`` needs ``champion``; ``rollback`` needs ``registry``, ``name`` and ``thresholds``; extra
    ``options`` go to :class:`ChallengerResponse`.

    Examples
    --------
    >>> make_response("alert").kind
    'alert'
    """
    if kind == "alert":
        return AlertResponse()
    if kind == "challenger":
        if champion is None:
            msg = "drift_response 'challenger' needs the champion model (champion=...)"
            raise ConfigError(msg)
        return ChallengerResponse(champion, **options)
    if kind == "rollback":
        if registry is None or name is None:
            msg = "drift_response 'rollback' needs registry=... and the model's name=..."
            raise ConfigError(msg)
        return RollbackResponse(registry, name, thresholds or {}, alias)
    msg = f"drift_response={kind!r}: use 'alert', 'challenger' or 'rollback'"
    raise ConfigError(msg)
