"""The promotion gate: a candidate is promoted only when its metrics meet the thresholds with no drift."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

#: Metrics where lower is better: their threshold is a maximum (every other threshold is a minimum).
LOWER_IS_BETTER = frozenset({"logloss", "log_loss", "mae", "mse", "rmse", "mape", "smape"})


class GateDecision(BaseModel):
    """Outcome of :func:`evaluate_gate`: ``reasons`` says why it failed (empty when it passed).

    ``checks`` describes every comparison made, passed or not, for the alias log.
    """

    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: list[str]
    checks: list[str] = Field(default_factory=list)


def evaluate_gate(
    metrics: Mapping[str, float], thresholds: Mapping[str, float], drift_active: bool
) -> GateDecision:
    """Decide whether a candidate with ``metrics`` may be promoted.

    Metric names are matched case-insensitively. For ``logloss``, ``mae``, ``mse``, ``rmse``, ``mape`` (and
    ``log_loss``, ``smape``) the threshold is a maximum; for every other metric (auc, accuracy, precision,
    recall, f1, ...) it is a minimum. A metric named in ``thresholds`` but missing from ``metrics``, or not a
    finite number, fails the gate; so does active drift.

    Examples
    --------
    >>> evaluate_gate({"auc": 0.91, "logloss": 0.3}, {"auc": 0.85, "logloss": 0.4}, drift_active=False).passed
    True
    >>> evaluate_gate({"auc": 0.80}, {"auc": 0.85}, drift_active=True).reasons
    ['auc 0.8 is below the minimum 0.85', 'drift is active: promotion waits until the detectors settle']
    """
    by_name = {str(k).lower(): v for k, v in metrics.items()}
    reasons: list[str] = []
    checks: list[str] = []
    for metric, threshold in thresholds.items():
        key = str(metric).lower()
        lower_better = key in LOWER_IS_BETTER
        if key not in by_name:
            reasons.append(f"metric {metric!r} is missing (have: {sorted(by_name) or 'none'})")
            continue
        value = by_name[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            reasons.append(f"metric {metric!r} is {value!r}, not a finite number")
            continue
        if lower_better:
            ok = value <= threshold
            checks.append(f"{metric} {value:.6g} {'<=' if ok else '>'} {threshold:.6g} (max)")
            if not ok:
                reasons.append(f"{metric} {value:.6g} is above the maximum {threshold:.6g}")
        else:
            ok = value >= threshold
            checks.append(f"{metric} {value:.6g} {'>=' if ok else '<'} {threshold:.6g} (min)")
            if not ok:
                reasons.append(f"{metric} {value:.6g} is below the minimum {threshold:.6g}")
    checks.append(f"drift {'active' if drift_active else 'inactive'}")
    if drift_active:
        reasons.append("drift is active: promotion waits until the detectors settle")
    return GateDecision(passed=not reasons, reasons=reasons, checks=checks)
