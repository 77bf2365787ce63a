"""Acting on a pipeline's drift response in the worker: swap the live model, move the registry alias.

:mod:`monitor.response` holds the policies (``alert``, ``challenger``, ``rollback``), pure functions of the
labelled examples. A :class:`DriftResponder` is the caller they need: it feeds each learned example of one
pipeline (its vector, label, the live model's prediction before learning, and whether the monitor's loss
ADWIN alarmed on it) to the pipeline's response and acts on the decision:

* ``alert``: counted (``hanzo_drift_responses_total{action="alert"}``); the Prometheus alerts tell people.
* ``promote`` (challenger won): the challenger becomes the live learner, taking over the champion's stream
  position (:meth:`learners.online.OnlineLearner.with_model`), in the learner slot and in every scorer of the
  model at once; a snapshot of it is registered and promoted to ``production`` with a reason naming the drift.
* ``rollback``: the alias moves back to the last good version (:class:`monitor.response.RollbackResponse`),
  and that version, loaded from the registry, becomes the live model at the current stream position.

The worker calls :meth:`DriftResponder.observe_batch` after each label batch, on the event loop between
batches, so the scoring side never sees half a swap. ``hanzo-ml train`` can call it after each joiner batch.
Registry writes happen there too, once per promotion or rollback (not per example).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from river import metrics as river_metrics

from hanzo.ml.config.errors import RegistryError
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.monitor.metrics import Metrics
from hanzo.ml.monitor.response import (
    AlertResponse,
    ChallengerResponse,
    Decision,
    DriftResponse,
    RollbackResponse,
)
from hanzo.ml.registry import Registry
from hanzo.ml.streams.learner_service import LearnerSlot, snapshot_metadata
from hanzo.ml.streams.order_processor import Scorer

logger = logging.getLogger(__name__)

#: (prediction before learning, label, loss) of one learned example, as in ``LabelBatchOutcome.examples``.
Example = tuple[float, float, float]


def _fresh_metrics(metrics: Any) -> Any:
    """An empty metric set with the same metrics and window (``None`` stays ``None``)."""
    if metrics is None:
        return None
    return type(metrics)(metrics.names, rolling_window=metrics.rolling_window)


class DriftResponder:
    """Feed one pipeline's learned examples to its drift response and act on the decisions.

    Parameters
    ----------
    response
        The pipeline's policy (:func:`build_responder` picks it from ``monitoring.drift_response``).
    slot
        The model's learner slot; its ``learner`` is the live model (the champion).
    scorers
        The scorers of this model (``OrderProcessor.scorers`` with its name); they switch with the slot.
    registry
        Where promoted challengers are registered and aliases move; required by ``challenger`` and
        ``rollback``.
    metrics
        Where actions are counted (``drift_responses_total``, ``promotions_total``, ``rollbacks_total``,
        ``snapshots_total``, ``model_version_info``); ``None`` counts nothing.
    alias
        The alias that serves the model.

    Examples
    --------
    >>> from river import linear_model
    >>> learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    >>> slot = LearnerSlot("fraud", "fraud", learner, "1.0.0", ("total",))
    >>> responder = DriftResponder(AlertResponse(), slot, [], registry=None)
    >>> xs, examples = [{"total": 1.0}] * 2, [(0.5, 1.0, 0.7)] * 2
    >>> [d.action for d in responder.observe_batch(xs, examples, alarms=[False, True])]
    ['none', 'alert']
    """

    def __init__(
        self,
        response: DriftResponse,
        slot: LearnerSlot,
        scorers: Sequence[Scorer],
        registry: Registry | None,
        metrics: Metrics | None = None,
        alias: str = "production",
    ) -> None:
        self.response = response
        self.slot = slot
        self.scorers = list(scorers)
        self.registry = registry
        self.metrics = metrics
        self.alias = alias
        self._shadow_metrics: Any = None
        #: the decisions that were not ``none``, oldest first (bounded by what the caller keeps)
        self.actions: list[Decision] = []

    @property
    def live(self) -> OnlineLearner:
        """The learner that scores and learns now."""
        return self.slot.learner

    def observe_batch(
        self, xs: Sequence[Mapping[str, Any]], examples: Sequence[Example], alarms: Sequence[bool]
    ) -> list[Decision]:
        """Take one batch of learned examples, in the order they were learned; return the decisions.

        ``xs[i]`` is the vector of ``examples[i]`` (the outcome's ``inputs`` and ``examples``) and
        ``alarms[i]`` whether the drift monitor alarmed on it. The live model has already learned the
        batch; when it is replaced part-way (a promotion or a rollback), the new live model then learns the
        rest of the batch, predict-then-learn, so it misses no example.
        """
        if isinstance(self.response, ChallengerResponse) and self.response.challenger is None:
            self.response.champion = self.live.model
        decisions: list[Decision] = []
        swapped = False
        for x, (y_pred, y, _loss), drift in zip(xs, examples, alarms, strict=True):
            if swapped:
                self.live.learn_example(dict(x), y)
                continue
            before = self.live
            decisions.append(self.observe(x, y, y_pred, drift))
            swapped = self.live is not before
        return decisions

    def observe(self, x: Mapping[str, Any], y: float, y_pred: float, drift: bool) -> Decision:
        """Take one learned example (the live model's prediction ``y_pred`` was made before it learned)."""
        target = self.live.target(y)
        decision = self.response.observe(x, target, y_pred, drift)
        if decision.action == "none":
            if decision.challenger_pred is not None and self._shadow_metrics is not None:
                self._shadow_metrics.update(target, decision.challenger_pred)
            return decision
        self._count(decision.action)
        self.actions.append(decision)
        if decision.action == "challenger_started":
            self._shadow_metrics = _fresh_metrics(self.live.metrics)
        if decision.challenger_pred is not None and self._shadow_metrics is not None:
            self._shadow_metrics.update(target, decision.challenger_pred)
        if decision.action == "challenger_dropped":
            logger.info("drift response %s: challenger dropped (%s)", self.slot.name, decision.reason)
            self._shadow_metrics = None
        elif decision.should_promote:
            self._promote(decision)
        elif decision.action == "rollback":
            self._rollback(decision)
        return decision

    def _count(self, action: str) -> None:
        if self.metrics is not None:
            self.metrics.drift_responses_total.labels(model=self.slot.name, action=action).inc()

    def _swap(self, new: OnlineLearner) -> None:
        """Make ``new`` the live learner of the slot and of every scorer of the model (one step)."""
        self.slot.learner = new
        for scorer in self.scorers:
            scorer.learner = new
        if isinstance(self.response, ChallengerResponse):
            self.response.champion = new.model

    def _promote(self, decision: Decision) -> None:
        assert isinstance(self.response, ChallengerResponse)  # noqa: S101 (only it decides promote)
        old = self.live
        new = old.with_model(self.response.promote(), self._shadow_metrics, version=old.version)
        self._shadow_metrics = None
        self._swap(new)
        logger.warning(
            "drift response %s: challenger promoted to live (%s; champion %.4g, challenger %.4g)",
            self.slot.name,
            decision.reason,
            decision.champion_score or 0.0,
            decision.challenger_score or 0.0,
        )
        if self.registry is None:
            return
        slot, registry = self.slot, self.registry
        reason = f"drift response: challenger trained from the drift alarm won ({decision.reason})"
        try:
            version = registry.next_snapshot_version(slot.name, slot.base_version)
            meta = snapshot_metadata(slot, old.version)
            meta["drift_response"] = {
                "action": "promote",
                "reason": reason,
                "champion_score": decision.champion_score,
                "challenger_score": decision.challenger_score,
                "n_compared": decision.n_compared,
            }
            new.version = version
            registry.register(new, slot.name, version, meta)
            registry.promote(slot.name, version, self.alias, reason)
        except (RegistryError, OSError):
            new.version = old.version
            logger.exception("drift response %s: registering the promoted challenger failed", slot.name)
            return
        slot.snapshots.append(version)
        slot.last_snapshot_examples = new.examples_learned
        slot.last_snapshot_at = time.monotonic()
        if self.metrics is not None:
            self.metrics.snapshots_total.labels(model=slot.name).inc()
            self.metrics.promotions_total.labels(model=slot.name).inc()
            self.metrics.set_model_version(slot.name, self.alias, version)

    def _rollback(self, decision: Decision) -> None:
        assert isinstance(self.response, RollbackResponse)  # noqa: S101 (only it decides rollback)
        assert decision.rollback_to is not None  # noqa: S101 (a rollback decision names its target)
        name = self.slot.name
        try:
            self.response.apply(decision)
            loaded = self.response.registry.load(name, decision.rollback_to)
        except (RegistryError, OSError):
            logger.exception("drift response %s: rollback to %s failed", name, decision.rollback_to)
            return
        if isinstance(loaded, OnlineLearner):
            model, metrics = loaded.model, loaded.metrics
        else:  # a plain River model registered by hand
            model, metrics = loaded, _fresh_metrics(self.live.metrics)
        self._swap(self.live.with_model(model, metrics, version=decision.rollback_to))
        logger.warning(
            "drift response %s: rolled back to %s (%s)", name, decision.rollback_to, decision.reason
        )
        if self.metrics is not None:
            self.metrics.rollbacks_total.labels(model=name).inc()
            self.metrics.set_model_version(name, self.alias, decision.rollback_to)


def build_responder(
    spec: PipelineSpec,
    slot: LearnerSlot,
    scorers: Sequence[Scorer],
    registry: Registry | None,
    metrics: Metrics | None = None,
) -> DriftResponder:
    """The responder ``spec.monitoring.drift_response`` chooses, for the model of ``slot``.

    A challenger is compared on log loss (classification) or MAE (regression) over
    ``monitoring.challenger_window`` examples and must win by ``challenger_margin``; a rollback judges
    versions by ``evaluation.threshold``.

    Raises
    ------
    ConfigError
        ``rollback`` without evaluation thresholds (no version could be judged good); a spec loaded with
        :meth:`config.pipeline.PipelineSpec.from_dict` or ``from_yaml`` already refuses that.
    RegistryError
        ``rollback`` without a registry.
    """
    m = spec.monitoring
    response: DriftResponse
    if m.drift_response == "challenger":
        metric = river_metrics.LogLoss if spec.model.task == "classification" else river_metrics.MAE
        response = ChallengerResponse(
            slot.learner.model,
            metric=metric,
            window=m.challenger_window,
            min_examples=m.challenger_window,
            margin=m.challenger_margin,
            max_examples=m.challenger_max_examples,
        )
    elif m.drift_response == "rollback":
        if registry is None:
            msg = f"pipeline {spec.name!r}: drift_response 'rollback' needs the model registry"
            raise RegistryError(msg)
        response = RollbackResponse(registry, spec.name, dict(spec.evaluation.threshold))
    else:
        response = AlertResponse()
    own = [s for s in scorers if s.name == spec.name]
    logger.info("%s: drift response %s", spec.name, m.drift_response)
    return DriftResponder(response, slot, own, registry, metrics)


def build_responders(
    specs: Sequence[PipelineSpec],
    slots: Sequence[LearnerSlot],
    scorers: Sequence[Scorer],
    registry: Registry | None,
    metrics: Metrics | None = None,
) -> dict[str, DriftResponder]:
    """One responder per pipeline, by name (the worker's ``Hub`` keeps them)."""
    by_name = {slot.name: slot for slot in slots}
    return {
        spec.name: build_responder(spec, by_name[spec.name], scorers, registry, metrics)
        for spec in specs
        if spec.name in by_name
    }
