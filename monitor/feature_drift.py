"""Drift of many input features at once: one detector per feature and a multiple-testing correction."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from river import base

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.monitor.chi2 import Chi2Detector
from hanzo.ml.monitor.ks import KSDetector
from hanzo.ml.monitor.two_sample import OnDrift, TwoSampleDetector

logger = logging.getLogger(__name__)

FeatureKind = Literal["numeric", "categorical"]
Correction = Literal["holm", "bonferroni", "none"]


class FeatureDrift(BaseModel):
    """The drift state of one feature, as reported by :meth:`FeatureDriftMonitor.report`."""

    model_config = ConfigDict(frozen=True)

    feature: str
    test: str
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    drifting: bool
    n_alarms: int
    last_alarm_at: int | None


def adjust_p_values(p_values: Mapping[str, float], method: Correction) -> dict[str, float]:
    """Adjust p-values for testing several hypotheses at once.

    ``"bonferroni"`` multiplies each by the number of tests; ``"holm"`` is Holm's step-down method, uniformly
    more powerful than Bonferroni with the same family-wise error guarantee; ``"none"`` returns them as they
    are. Adjusted values are capped at 1.

    Examples
    --------
    >>> adjust_p_values({"a": 0.01, "b": 0.04, "c": 0.03}, "holm")
    {'a': 0.03, 'b': 0.06, 'c': 0.06}
    >>> adjust_p_values({"a": 0.01, "b": 0.04, "c": 0.03}, "bonferroni")
    {'a': 0.03, 'b': 0.12, 'c': 0.09}
    """
    m = len(p_values)
    if method == "none":
        return dict(p_values)
    if method == "bonferroni":
        return {k: min(1.0, p * m) for k, p in p_values.items()}
    if method != "holm":
        msg = f"unknown correction {method!r}: use 'holm', 'bonferroni' or 'none'"
        raise ConfigError(msg)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (key, p) in enumerate(sorted(p_values.items(), key=lambda kv: kv[1])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[key] = round(running, 15)
    return {k: adjusted[k] for k in p_values}


def _column_of(detector: TwoSampleDetector, values: list[Any]) -> tuple[Sequence[int], list[Any]] | None:
    """What ``detector.step`` would add of ``values`` (``None`` and ``NaN`` already left out)."""
    if type(detector) is Chi2Detector:
        return range(len(values)), values  # its step leaves out None only, and adds the rest as it is
    return detector._column(values)


class FeatureDriftMonitor(base.Base):
    """One drift detector per feature (KS for numeric, chi-square for categorical), corrected for many tests.

    Testing 20 features at ``alpha`` = 0.01 gives about 20 times the false alarms of one. Each time some
    features run their test, the monitor adjusts the latest p-values of all features (Holm by default, or
    Bonferroni) and a feature alarms only when its adjusted p-value is below ``alpha`` and its effect size
    reaches ``min_effect``. Features update together when every ``x`` carries every feature, so their tests
    run at the same update; a feature missing from ``x`` (or ``None``/``NaN``) is skipped for that ``x`` and
    the correction then uses its last p-value. Keys of ``x`` that are not declared features are ignored.
    Like River estimators, it can be ``clone()``-d: constructor arguments are stored as they are.

    Parameters
    ----------
    features
        Feature name -> ``"numeric"`` or ``"categorical"``.
    alpha
        Family-wise significance level.
    min_effect
        Smallest effect size (KS statistic or Cramér's V) that raises an alarm.
    correction
        ``"holm"``, ``"bonferroni"`` or ``"none"``.
    reference_size, window_size, check_every, reference_period, on_drift
        Passed to every detector (see :class:`monitor.KSDetector`).
    seed
        Seed of the reservoir sampling; feature ``i`` (in declaration order) uses ``seed + i``.

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import FeatureDriftMonitor
    >>> rng = random.Random(0)
    >>> mon = FeatureDriftMonitor(
    ...     {"basket_value": "numeric", "channel": "categorical"},
    ...     reference_size=500, window_size=500, check_every=250, seed=0,
    ... )
    >>> for i in range(3000):
    ...     shifted = i >= 1500
    ...     mon.update({
    ...         "basket_value": rng.gauss(60 if shifted else 50, 10),
    ...         "channel": rng.choice(["web", "app"]),
    ...     })
    ...     if mon.drift_detected:
    ...         print(i, mon.drifting_features)
    1749 ['basket_value']
    >>> [(r.feature, r.test, r.n_alarms, r.last_alarm_at) for r in mon.report()]
    [('basket_value', 'ks', 1, 1750), ('channel', 'chi2', 0, None)]
    """

    def __init__(
        self,
        features: Mapping[str, FeatureKind],
        alpha: float = 0.01,
        min_effect: float = 0.1,
        correction: Correction = "holm",
        reference_size: int = 1000,
        window_size: int = 1000,
        check_every: int = 500,
        reference_period: int | None = None,
        on_drift: OnDrift = "rebaseline",
        seed: int | None = None,
    ) -> None:
        self.features = features
        self.alpha = alpha
        self.min_effect = min_effect
        self.correction = correction
        self.reference_size = reference_size
        self.window_size = window_size
        self.check_every = check_every
        self.reference_period = reference_period
        self.on_drift = on_drift
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        if self.correction not in ("holm", "bonferroni", "none"):
            msg = f"FeatureDriftMonitor: correction={self.correction!r}: use 'holm', 'bonferroni' or 'none'"
            raise ConfigError(msg)
        self.detectors: dict[str, TwoSampleDetector] = {}
        for i, (name, kind) in enumerate(self.features.items()):
            kwargs: dict[str, Any] = {
                "reference_size": self.reference_size,
                "window_size": self.window_size,
                "check_every": self.check_every,
                "alpha": self.alpha,
                "min_effect": self.min_effect,
                "reference_period": self.reference_period,
                "on_drift": self.on_drift,
                "seed": None if self.seed is None else self.seed + i,
            }
            if kind == "numeric":
                self.detectors[name] = KSDetector(**kwargs)
            elif kind == "categorical":
                self.detectors[name] = Chi2Detector(**kwargs)
            else:
                msg = f"feature {name!r} has kind {kind!r}: use 'numeric' or 'categorical'"
                raise ConfigError(msg)
        self._adjusted: dict[str, float] = {}
        self.n_updates = 0
        self.drifting_features: list[str] = []
        self._drift_detected = False

    @property
    def drift_detected(self) -> bool:
        """Whether some feature raised an alarm on the last update (its name is in ``drifting_features``)."""
        return self._drift_detected

    def update(self, x: Mapping[str, Any]) -> None:
        """Feed one feature vector; sets ``drift_detected`` and ``drifting_features`` (those alarmed now)."""
        self.n_updates += 1
        tested: list[str] = []
        for name, detector in self.detectors.items():
            value = x.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                detector._drift_detected = False
                continue
            if detector.step(value):
                tested.append(name)
        self.drifting_features = []
        self._drift_detected = False
        if not tested:
            return
        latest = {n: d.p_value for n, d in self.detectors.items() if d.p_value is not None}
        self._adjusted = adjust_p_values(latest, self.correction)
        for name in tested:
            detector = self.detectors[name]
            detector.conclude(self._adjusted[name] < self.alpha)
            if detector.drift_detected:
                self.drifting_features.append(name)
        self._drift_detected = bool(self.drifting_features)
        if self._drift_detected:
            logger.info("feature drift at update %d: %s", self.n_updates, ", ".join(self.drifting_features))

    def update_many(self, xs: Sequence[Mapping[str, Any]]) -> list[tuple[int, list[str]]]:
        """:meth:`update` on each x in turn, in one call; returns ``(position, features alarmed)`` per alarm.

        Each feature's values between two of its due tests are added in one step; tests run, and are
        corrected across features, at the x where they fall due, so the state afterwards (samples, tests,
        p-values, alarms, ``drift_detected`` and ``drifting_features`` of the last x) is the one the calls
        to :meth:`update` would leave.
        """
        columns: dict[str, tuple[Sequence[int], list[Any]]] = {}
        for name, detector in self.detectors.items():
            positions: list[int] = []
            values: list[Any] = []
            for i, x in enumerate(xs):
                value = x.get(name)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                positions.append(i)
                values.append(value)
            column = _column_of(detector, values)
            if column is None:  # a value the detector rejects: one x at a time, so it raises where it would
                return self._update_each(xs)
            kept_at, kept = column
            columns[name] = ([positions[j] for j in kept_at], kept)
        base = self.n_updates
        self.n_updates += len(xs)
        due = {name: d._advance(columns[name][1], 0) for name, d in self.detectors.items()}
        found: list[tuple[int, list[str]]] = []
        while True:
            pending = {name: columns[name][0][at] for name, at in due.items() if at < len(columns[name][1])}
            if not pending:
                break
            now = min(pending.values())
            tested = [name for name, at in pending.items() if at == now]  # in declaration order
            for name in tested:
                self.detectors[name]._run_test()
            latest = {n: d.p_value for n, d in self.detectors.items() if d.p_value is not None}
            self._adjusted = adjust_p_values(latest, self.correction)
            alarmed = []
            for name in tested:
                detector = self.detectors[name]
                detector.conclude(self._adjusted[name] < self.alpha)
                if detector.drift_detected:
                    alarmed.append(name)
                due[name] = detector._advance(columns[name][1], due[name] + 1)
            if alarmed:
                found.append((now, alarmed))
                logger.info("feature drift at update %d: %s", base + now + 1, ", ".join(alarmed))
        last = found[-1][1] if found and found[-1][0] == len(xs) - 1 else []
        for name, detector in self.detectors.items():
            detector._drift_detected = name in last
        self.drifting_features = list(last)
        self._drift_detected = bool(last)
        return found

    def _update_each(self, xs: Sequence[Mapping[str, Any]]) -> list[tuple[int, list[str]]]:
        found: list[tuple[int, list[str]]] = []
        for i, x in enumerate(xs):
            self.update(x)
            if self.drifting_features:
                found.append((i, list(self.drifting_features)))
        return found

    def report(self) -> list[FeatureDrift]:
        """Return the state of every feature, in declaration order."""
        return [
            FeatureDrift(
                feature=name,
                test=d.test_name,
                statistic=d.statistic,
                p_value=d.p_value,
                p_value_adjusted=self._adjusted.get(name),
                drifting=d.drifting,
                n_alarms=d.n_alarms,
                last_alarm_at=d.last_alarm_at,
            )
            for name, d in self.detectors.items()
        ]
