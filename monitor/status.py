"""The Monitor API: what a worker updates for every prediction and label, and its status for people.

A worker owns one :class:`Monitor` per model and calls :meth:`Monitor.observe`; it calls
:meth:`Monitor.publish` now and then so ``hanzo-ml monitor MODEL`` (any process) can read the status back
from Redis with :meth:`Monitor.read_status`.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from river import metrics as river_metrics
from river import utils as river_utils

from hanzo.ml.config.errors import HanzoError, ValidationError
from hanzo.ml.monitor.adwin import LossADWIN
from hanzo.ml.monitor.feature_drift import Correction, FeatureDrift, FeatureDriftMonitor, FeatureKind
from hanzo.ml.monitor.ks import KSDetector
from hanzo.ml.monitor.two_sample import TwoSampleDetector

if TYPE_CHECKING:
    import redis

    from hanzo.ml.monitor.metrics import Metrics

logger = logging.getLogger(__name__)

DriftKind = Literal["feature", "prediction", "loss"]

#: ``feature`` label of the detectors that watch the predictions and the loss (not input features).
PREDICTION = "(prediction)"
LOSS = "(loss)"


#: The p99 scoring latency above which ``ScoringLatencyHigh`` fires (config/prometheus/alerts.yml).
LATENCY_P99_LIMIT_S = 0.01
#: The rolling AUC below which ``ModelPerformanceDegraded`` fires (config/prometheus/alerts.yml).
AUC_FLOOR = 0.7


class DetectorState(BaseModel):
    """The state of one detector on the predictions or the loss."""

    model_config = ConfigDict(frozen=True)

    detector: str
    statistic: float | None = None
    p_value: float | None = None
    drifting: bool = False
    n_alarms: int = 0
    last_alarm_at: int | None = Field(None, description="observation number of the last alarm")


class Alarm(BaseModel):
    """One drift alarm: when, which detector, on which feature (or ``(prediction)`` / ``(loss)``)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: DriftKind
    detector: str
    feature: str


class PredictionHistogram(BaseModel):
    """Counts of the predictions in ``len(edges) - 1`` bins: the reference sample and the recent window."""

    model_config = ConfigDict(frozen=True)

    edges: list[float]
    reference: list[int]
    recent: list[int]


class MonitorStatus(BaseModel):
    """A snapshot of a model's monitoring, as JSON in Redis and as a table in ``hanzo-ml monitor``."""

    model_config = ConfigDict(frozen=True)

    model: str
    updated_at: datetime
    n_observed: int
    n_labelled: int
    features: list[FeatureDrift]
    prediction_ks: DetectorState
    prediction_adwin: DetectorState
    loss_adwin: DetectorState
    drift_active: dict[str, bool]
    metric_name: str
    metric_value: float | None
    metric_trend: list[float] = Field(description="recent values of the rolling metric, oldest first")
    metric_trend_at: list[datetime] = Field(
        default_factory=list, description="when each value of metric_trend was recorded"
    )
    prediction_histogram: PredictionHistogram | None = None
    latency_p50_s: float | None
    latency_p99_s: float | None
    last_alarm: Alarm | None
    recent_alarms: list[Alarm]

    def alerts(self, latency_p99_limit_s: float = LATENCY_P99_LIMIT_S) -> dict[str, bool]:
        """The four model alerts of the shipped Prometheus rules, as this status shows them.

        ``FeatureDrift`` and ``PredictionDrift``: a detector on the inputs / the predictions is drifting;
        ``ModelPerformanceDegraded``: ADWIN saw the loss go up, or a rolling AUC is below 0.7;
        ``ScoringLatencyHigh``: the recent p99 latency is above ``latency_p99_limit_s`` (10 ms).
        """
        value = self.metric_value
        auc_low = self.metric_name == "auc" and value is not None and value < AUC_FLOOR
        return {
            "FeatureDrift": self.drift_active.get("feature", False),
            "PredictionDrift": self.drift_active.get("prediction", False),
            "ModelPerformanceDegraded": self.loss_adwin.drifting or auc_low,
            "ScoringLatencyHigh": self.latency_p99_s is not None and self.latency_p99_s > latency_p99_limit_s,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _infer_kinds(x: Mapping[str, Any]) -> dict[str, FeatureKind]:
    """Numbers are numeric and booleans categorical; strings are skipped (they may be ids: declare them)."""
    kinds: dict[str, FeatureKind] = {}
    for name, value in x.items():
        if isinstance(value, bool):
            kinds[name] = "categorical"
        elif isinstance(value, int | float | np.integer | np.floating):
            kinds[name] = "numeric"
    return kinds


class Monitor:
    """Drift and health monitoring of one model, updated in-process by the worker.

    It owns a :class:`monitor.FeatureDriftMonitor` on the inputs, a KS detector and an ADWIN on the
    predictions, an ADWIN on the loss that alarms only when the loss goes up, a rolling metric with a trend of
    its recent values, and the recent latencies. When a :class:`monitor.Metrics` is given it keeps the drift
    gauges and counters (``drift_statistic``, ``drift_p_value``, ``drift_alarms_total``, ``drift_active``)
    and ``model_metric{window="rolling"}`` up to date; latency histograms stay the scorer's job.

    Parameters
    ----------
    model
        The model's name (the ``model`` label of metrics and the Redis key ``mon:{model}``).
    features
        Feature name -> ``"numeric"`` or ``"categorical"``. ``None`` infers them from the first ``x``: numbers
        are numeric, booleans categorical, and strings are left out because they may be ids (an id is never a
        feature to test); declare categorical string features here.
    metrics
        Where to report; ``None`` reports nothing.
    metric
        A River metric updated with each label, e.g. ``utils.Rolling(metrics.ROCAUC, window_size=1000)``.
        Metrics that need labels (``requires_labels``) get ``y_pred >= threshold``. Default: rolling MAE over
        1,000 labels (for probabilities, the mean of 1 - p(true class)).
    metric_name
        The ``metric`` label value; default the metric's class name in lower case (``"mae"``).
    alpha, min_effect, correction, reference_size, window_size, check_every
        The two-sample detectors' settings (see :class:`monitor.KSDetector`).
    adwin_delta, adwin_cooldown
        The ADWINs' settings (see :class:`monitor.LossADWIN`).
    threshold
        Decision threshold for metrics that need labels.
    trend_every, trend_points
        Record the metric every ``trend_every`` labels; keep the last ``trend_points`` values.
    latency_window
        How many recent latencies the p50/p99 are computed over.
    max_alarms
        How many recent alarms the status keeps.
    seed
        Seed of the detectors' reservoir sampling.
    clock
        Returns the current time (timezone-aware); for tests.

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import Monitor
    >>> rng = random.Random(1)
    >>> mon = Monitor(
    ...     "churn_prediction",
    ...     features={"days_since_last_order": "numeric", "plan": "categorical"},
    ...     reference_size=300, window_size=300, check_every=100, seed=0,
    ... )
    >>> for i in range(2000):
    ...     days = rng.expovariate(1 / (30 if i < 1000 else 60))
    ...     p = min(days / 100, 1.0)
    ...     mon.observe({"days_since_last_order": days, "plan": "pro"}, y_pred=p, y_true=rng.random() < p)
    >>> status = mon.status()
    >>> for alarm in status.recent_alarms:
    ...     print(alarm.kind, alarm.detector, alarm.feature)
    prediction adwin (prediction)
    feature ks days_since_last_order
    prediction ks (prediction)
    >>> [(f.feature, f.test, f.n_alarms) for f in status.features]
    [('days_since_last_order', 'ks', 1), ('plan', 'chi2', 0)]
    >>> status.n_labelled, status.metric_name, len(status.metric_trend)
    (2000, 'mae', 20)
    >>> status.alerts()["PredictionDrift"], sorted(status.alerts())
    (True, ['FeatureDrift', 'ModelPerformanceDegraded', 'PredictionDrift', 'ScoringLatencyHigh'])
    """

    def __init__(
        self,
        model: str,
        features: Mapping[str, FeatureKind] | None = None,
        metrics: Metrics | None = None,
        metric: Any = None,
        metric_name: str | None = None,
        alpha: float = 0.01,
        min_effect: float = 0.1,
        correction: Correction = "holm",
        reference_size: int = 1000,
        window_size: int = 1000,
        check_every: int = 500,
        adwin_delta: float = 0.002,
        adwin_cooldown: int = 1000,
        threshold: float = 0.5,
        trend_every: int = 100,
        trend_points: int = 60,
        latency_window: int = 10_000,
        max_alarms: int = 20,
        seed: int | None = 0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.model = model
        self.features = features
        self.metrics = metrics
        self.metric: Any = (
            metric if metric is not None else river_utils.Rolling(river_metrics.MAE, window_size=1000)
        )
        inner = getattr(self.metric, "obj", self.metric)
        self.metric_name = metric_name or type(inner).__name__.lower()
        self.alpha = alpha
        self.min_effect = min_effect
        self.correction = correction
        self.reference_size = reference_size
        self.window_size = window_size
        self.check_every = check_every
        self.threshold = threshold
        self.trend_every = trend_every
        self.clock: Callable[[], datetime] = clock
        self.seed = seed
        self._feature_drift: FeatureDriftMonitor | None = None
        if features is not None:
            self._feature_drift = self._make_feature_drift(features)
        self.prediction_ks = KSDetector(
            reference_size=reference_size,
            window_size=window_size,
            check_every=check_every,
            alpha=alpha,
            min_effect=min_effect,
            seed=None if seed is None else seed - 1,
        )
        self.prediction_adwin = LossADWIN(delta=adwin_delta, cooldown=adwin_cooldown, direction="both")
        self.loss_adwin = LossADWIN(delta=adwin_delta, cooldown=adwin_cooldown, direction="increase")
        self.n_observed = 0
        self.n_labelled = 0
        self._trend: collections.deque[float] = collections.deque(maxlen=trend_points)
        self._trend_at: collections.deque[datetime] = collections.deque(maxlen=trend_points)
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._alarms: collections.deque[Alarm] = collections.deque(maxlen=max_alarms)
        self._checks_seen: dict[str, int] = {}
        self._active: dict[str, bool] = {}

    def _make_feature_drift(self, kinds: Mapping[str, FeatureKind]) -> FeatureDriftMonitor:
        logger.info("monitor %s watches features %s", self.model, dict(kinds))
        return FeatureDriftMonitor(
            kinds,
            alpha=self.alpha,
            min_effect=self.min_effect,
            correction=self.correction,
            reference_size=self.reference_size,
            window_size=self.window_size,
            check_every=self.check_every,
            seed=self.seed,
        )

    def observe(
        self,
        x: Mapping[str, Any],
        y_pred: float,
        y_true: float | None = None,
        loss: float | None = None,
        latency_s: float | None = None,
    ) -> None:
        """Record one prediction (and its label, when known).

        Parameters
        ----------
        x
            The feature vector the prediction was made from.
        y_pred
            The prediction (a probability for classifiers, a value for regressors).
        y_true
            The label, when it has arrived; updates the metric and, without ``loss``, the loss.
        loss
            The example's loss; default ``abs(y_true - y_pred)`` when ``y_true`` is given.
        latency_s
            How long the prediction took.
        """
        if isinstance(y_pred, bool) or not isinstance(y_pred, int | float | np.integer | np.floating):
            msg = f"Monitor({self.model!r}).observe: y_pred={y_pred!r} must be a number"
            raise ValidationError(msg)
        self.n_observed += 1
        if self._feature_drift is None:
            kinds = _infer_kinds(x)
            if kinds:
                self._feature_drift = self._make_feature_drift(kinds)
        if self._feature_drift is not None:
            self._feature_drift.update(x)
            for name in self._feature_drift.drifting_features:
                detector = self._feature_drift.detectors[name]
                self._alarm("feature", detector.test_name, name)
        self.prediction_ks.update(y_pred)
        if self.prediction_ks.drift_detected:
            self._alarm("prediction", "ks", PREDICTION)
        self.prediction_adwin.update(float(y_pred))
        if self.prediction_adwin.drift_detected:
            self._alarm("prediction", "adwin", PREDICTION)
        if y_true is not None or loss is not None:
            self._observe_label(float(y_pred), y_true, loss)
        if latency_s is not None and math.isfinite(latency_s):
            self._latencies.append(float(latency_s))
        if self.metrics is not None:
            self._report_metrics(self.metrics)

    def observe_many(
        self,
        xs: Sequence[Mapping[str, Any]],
        y_preds: Sequence[float],
        latencies_s: Sequence[float] | None = None,
    ) -> None:
        """Record a batch of predictions (no labels): :meth:`observe` on each in turn, in one call.

        The detectors end in the state, and raise the alarms in the order, that the calls to
        :meth:`observe` would give; the metrics are reported once, at the end of the batch.

        Examples
        --------
        >>> import random
        >>> rng = random.Random(0)
        >>> xs = [{"total": rng.gauss(50 if i < 1500 else 70, 10)} for i in range(3000)]
        >>> one, many = (Monitor("m", reference_size=300, window_size=300, check_every=100) for _ in "ab")
        >>> for x in xs:
        ...     one.observe(x, 0.5)
        >>> many.observe_many(xs[:1000], [0.5] * 1000)
        >>> many.observe_many(xs[1000:], [0.5] * 2000)
        >>> [(f.feature, f.n_alarms, f.last_alarm_at) for f in many.status().features]
        [('total', 1, 1600)]
        >>> many.status().features == one.status().features
        True
        """
        if len(y_preds) != len(xs) or (latencies_s is not None and len(latencies_s) != len(xs)):
            msg = (
                f"Monitor({self.model!r}).observe_many: {len(xs)} xs, {len(y_preds)} y_preds and "
                f"{'no' if latencies_s is None else len(latencies_s)} latencies: give one of each"
            )
            raise ValidationError(msg)
        start = 0
        while self._feature_drift is None and start < len(xs):  # the first x with features sets their kinds
            self.observe(
                xs[start], y_preds[start], latency_s=None if latencies_s is None else latencies_s[start]
            )
            start += 1
        xs, y_preds = xs[start:], y_preds[start:]
        if latencies_s is not None:
            latencies_s = latencies_s[start:]
        if not xs:
            return
        for y_pred in y_preds:
            if type(y_pred) is not float and (
                isinstance(y_pred, bool) or not isinstance(y_pred, int | float | np.integer | np.floating)
            ):
                msg = f"Monitor({self.model!r}).observe: y_pred={y_pred!r} must be a number"
                raise ValidationError(msg)
        # (position, order within an observation, kind, detector, feature), replayed in observe's order
        alarms: list[tuple[int, int, DriftKind, str, str]] = []
        if self._feature_drift is not None:
            for at, names in self._feature_drift.update_many(xs):
                alarms += [(at, 0, "feature", self._feature_drift.detectors[n].test_name, n) for n in names]
        alarms += [(at, 1, "prediction", "ks", PREDICTION) for at in self.prediction_ks.update_many(y_preds)]
        adwin = self.prediction_adwin
        for at, y_pred in enumerate(y_preds):
            adwin.update(float(y_pred))
            if adwin.drift_detected:
                alarms.append((at, 2, "prediction", "adwin", PREDICTION))
        self.n_observed += len(xs)
        for _, _, kind, detector, feature in sorted(alarms, key=lambda a: (a[0], a[1])):  # stable
            self._alarm(kind, detector, feature)
        if latencies_s is not None:
            self._latencies.extend(float(t) for t in latencies_s if math.isfinite(t))
        if self.metrics is not None:
            self._report_metrics(self.metrics)

    @property
    def drift_active(self) -> bool:
        """Whether any detector (features, predictions, loss) is in a drift state now."""
        return any(self._drift_active().values())

    def observe_label(self, y_pred: float, y_true: float | None = None, loss: float | None = None) -> bool:
        """Record a label that arrived after its prediction was observed (loss ADWIN, metric trend).

        Use this with delayed labels: :meth:`observe` at scoring time (features, predictions, latency),
        then this when the label joins, so the feature vector is not counted twice.

        Returns whether the loss ADWIN raised an alarm on this example (the signal a drift response acts
        on: the model got worse; one drift is one alarm).
        """
        alarmed = self._observe_label(float(y_pred), y_true, loss)
        if self.metrics is not None:
            self._report_metrics(self.metrics)
        return alarmed

    def _observe_label(self, y_pred: float, y_true: float | None, loss: float | None) -> bool:
        self.n_labelled += 1
        alarmed = False
        if loss is None and y_true is not None:
            loss = abs(float(y_true) - y_pred)
        if loss is not None and math.isfinite(loss):
            self.loss_adwin.update(loss)
            if self.loss_adwin.drift_detected:
                alarmed = True
                self._alarm("loss", "adwin", LOSS)
        if y_true is not None:
            if getattr(self.metric, "requires_labels", False):
                self.metric.update(bool(y_true), y_pred >= self.threshold)
            else:
                self.metric.update(y_true, y_pred)
            if self.n_labelled % self.trend_every == 0:
                self._trend.append(float(self.metric.get()))
                self._trend_at.append(self.clock())
        return alarmed

    def _alarm(self, kind: DriftKind, detector: str, feature: str) -> None:
        alarm = Alarm(at=self.clock(), kind=kind, detector=detector, feature=feature)
        self._alarms.append(alarm)
        logger.warning(
            "drift alarm: model=%s kind=%s detector=%s feature=%s", self.model, kind, detector, feature
        )
        if self.metrics is not None:
            self.metrics.drift_alarms_total.labels(model=self.model, detector=detector, feature=feature).inc()

    def _two_sample_detectors(self) -> list[tuple[str, TwoSampleDetector]]:
        found: list[tuple[str, TwoSampleDetector]] = [(PREDICTION, self.prediction_ks)]
        if self._feature_drift is not None:
            found += list(self._feature_drift.detectors.items())
        return found

    def _drift_active(self) -> dict[str, bool]:
        features = self._feature_drift is not None and any(
            d.drifting for d in self._feature_drift.detectors.values()
        )
        return {
            "feature": features,
            "prediction": self.prediction_ks.drifting or self.prediction_adwin.drifting,
            "loss": self.loss_adwin.drifting,
        }

    def _report_metrics(self, m: Metrics) -> None:
        for feature, detector in self._two_sample_detectors():
            if self._checks_seen.get(feature) == detector.n_checks or detector.statistic is None:
                continue
            self._checks_seen[feature] = detector.n_checks
            labels = (self.model, detector.test_name, feature)
            m.child(m.drift_statistic, *labels).set(detector.statistic)
            if detector.p_value is not None:
                m.child(m.drift_p_value, *labels).set(detector.p_value)
        for kind, active in self._drift_active().items():
            if self._active.get(kind) != active:
                self._active[kind] = active
                m.child(m.drift_active, self.model, kind).set(int(active))
        if self.n_labelled and self.n_labelled % self.trend_every == 0 and self._trend:
            m.child(m.model_metric, self.model, self.metric_name, "rolling").set(self._trend[-1])

    def status(self) -> MonitorStatus:
        """Return the current status (drift per feature and detector, metric trend, latency, last alarm)."""
        latencies = np.fromiter(self._latencies, dtype=float) if self._latencies else None
        p50, p99 = (
            (None, None) if latencies is None else (float(x) for x in np.percentile(latencies, [50, 99]))
        )
        value = float(self.metric.get()) if self.n_labelled else None
        return MonitorStatus(
            model=self.model,
            updated_at=self.clock(),
            n_observed=self.n_observed,
            n_labelled=self.n_labelled,
            features=self._feature_drift.report() if self._feature_drift is not None else [],
            prediction_ks=DetectorState(
                detector="ks",
                statistic=self.prediction_ks.statistic,
                p_value=self.prediction_ks.p_value,
                drifting=self.prediction_ks.drifting,
                n_alarms=self.prediction_ks.n_alarms,
                last_alarm_at=self.prediction_ks.last_alarm_at,
            ),
            prediction_adwin=self._adwin_state(self.prediction_adwin),
            loss_adwin=self._adwin_state(self.loss_adwin),
            drift_active=self._drift_active(),
            metric_name=self.metric_name,
            metric_value=value if value is None or math.isfinite(value) else None,
            metric_trend=list(self._trend),
            metric_trend_at=list(self._trend_at),
            prediction_histogram=self._prediction_histogram(),
            latency_p50_s=p50,
            latency_p99_s=p99,
            last_alarm=self._alarms[-1] if self._alarms else None,
            recent_alarms=list(self._alarms),
        )

    def _prediction_histogram(self, bins: int = 20) -> PredictionHistogram | None:
        """Histogram of the prediction KS detector's reference sample and recent window (common bins)."""
        reference = np.asarray(self.prediction_ks._reference, dtype=float)
        recent = np.asarray(self.prediction_ks._window, dtype=float)
        both = np.concatenate([reference, recent])
        both = both[np.isfinite(both)]
        if both.size == 0:
            return None
        low, high = float(both.min()), float(both.max())
        if low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0  # probabilities: fixed bins, comparable over time
        elif high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, bins + 1)
        return PredictionHistogram(
            edges=[float(e) for e in edges],
            reference=[int(c) for c in np.histogram(reference[np.isfinite(reference)], edges)[0]],
            recent=[int(c) for c in np.histogram(recent[np.isfinite(recent)], edges)[0]],
        )

    @staticmethod
    def _adwin_state(detector: LossADWIN) -> DetectorState:
        return DetectorState(
            detector="adwin",
            statistic=detector.estimation if detector.width else None,
            drifting=detector.drifting,
            n_alarms=detector.n_alarms,
            last_alarm_at=detector.last_alarm_at,
        )

    @staticmethod
    def status_key(model: str, key_prefix: str = "") -> str:
        """Return the Redis key of a model's status: ``{key_prefix}mon:{model}``."""
        return f"{key_prefix}mon:{model}"

    def publish(self, redis_client: redis.Redis, key_prefix: str = "", ttl_s: int | None = None) -> str:
        """Write :meth:`status` as JSON to ``{key_prefix}mon:{model}``; returns the key.

        ``ttl_s`` lets a dead worker's status expire; ``None`` keeps it.
        """
        key = self.status_key(self.model, key_prefix)
        redis_client.set(key, self.status().model_dump_json(), ex=ttl_s)
        return key

    @classmethod
    def read_status(cls, redis_client: redis.Redis, model: str, key_prefix: str = "") -> MonitorStatus:
        """Read a status written by :meth:`publish` (from any process).

        Raises
        ------
        HanzoError
            When no status is stored for ``model``.
        """
        key = cls.status_key(model, key_prefix)
        raw = redis_client.get(key)
        if raw is None:
            msg = (
                f"no monitor status for model {model!r} at Redis key {key!r}: is a worker running that "
                f"model, and is the key prefix {key_prefix!r} right (HANZO_KEY_PREFIX)?"
            )
            raise HanzoError(msg)
        return MonitorStatus.model_validate_json(raw)
