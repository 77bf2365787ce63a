"""Batched monitor updates leave the state and raise the alarms that one update per value would."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.monitor import FeatureDriftMonitor, KSDetector, Monitor
from hanzo.ml.monitor.two_sample import TwoSampleDetector

FIXED = datetime(2026, 1, 1, tzinfo=UTC)


def _state(d: TwoSampleDetector) -> tuple[Any, ...]:
    return (
        list(d._reference),
        list(d._window),
        d._n_reference_seen,
        d._reference_ready,
        d._since_check,
        d.n_updates,
        d.n_checks,
        d.n_alarms,
        d.statistic,
        d.p_value,
        d.drifting,
        d.last_alarm_at,
        d._latched,
        d._rng.getstate(),
        d.drift_detected,
    )


def _stream(n: int, seed: int) -> list[dict[str, Any]]:
    """Three regimes, missing and NaN values, a categorical feature that shifts too."""
    rng = random.Random(seed)
    xs = []
    for i in range(n):
        regime = 0 if i < n // 3 else 1 if i < 2 * n // 3 else 2
        x: dict[str, Any] = {
            "total": rng.gauss(50 + 15 * regime, 10),
            "age": rng.expovariate(1 / (30 + 30 * (regime == 1))),
            "method": rng.choice(["card", "paypal"] if regime < 2 else ["card", "crypto", "crypto"]),
            "flag": float(rng.random() < 0.1),
        }
        if rng.random() < 0.02:
            x["age"] = None
        if rng.random() < 0.02:
            x["total"] = math.nan
        if rng.random() < 0.01:
            del x["method"]
        xs.append(x)
    return xs


def _batches(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < n:
        size = rng.choice([1, 2, 17, 250, 500, 999, 1500])
        out.append((i, min(n, i + size)))
        i += size
    return out


@pytest.mark.parametrize("on_drift", ["rebaseline", "latch"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ks_update_many_equals_update(on_drift: str, seed: int) -> None:
    rng = random.Random(seed)
    values: list[Any] = [rng.gauss(0 if i < 3000 else 1, 1) for i in range(9000)]
    for i in range(0, 9000, 97):
        values[i] = math.nan
    one = KSDetector(reference_size=300, window_size=400, check_every=150, on_drift=on_drift, seed=3)  # type: ignore[arg-type]
    many = KSDetector(reference_size=300, window_size=400, check_every=150, on_drift=on_drift, seed=3)  # type: ignore[arg-type]
    alarms_one = []
    for i, v in enumerate(values):
        one.update(v)
        if one.drift_detected:
            alarms_one.append(i)
    alarms_many = []
    for start, end in _batches(len(values), seed):
        alarms_many += [start + a for a in many.update_many(values[start:end])]
    assert alarms_one and alarms_many == alarms_one
    assert _state(many) == _state(one)


def test_ks_update_many_rejects_what_update_rejects_at_the_same_value() -> None:
    one, many = KSDetector(seed=1), KSDetector(seed=1)
    values: list[Any] = [1.0, 2.0, "x", 3.0]
    with pytest.raises(ValidationError) as a:
        for v in values:
            one.update(v)
    with pytest.raises(ValidationError) as b:
        many.update_many(values)
    assert str(a.value) == str(b.value)
    assert _state(many) == _state(one)


@pytest.mark.parametrize("on_drift", ["rebaseline", "latch"])
def test_feature_monitor_update_many_equals_update(on_drift: str) -> None:
    kinds = {"total": "numeric", "age": "numeric", "method": "categorical", "flag": "categorical"}
    args: dict[str, Any] = {"reference_size": 300, "window_size": 300, "check_every": 100, "seed": 5}
    one = FeatureDriftMonitor(kinds, on_drift=on_drift, **args)  # type: ignore[arg-type]
    many = FeatureDriftMonitor(kinds, on_drift=on_drift, **args)  # type: ignore[arg-type]
    xs = _stream(12_000, seed=2)
    found_one = []
    for i, x in enumerate(xs):
        one.update(x)
        if one.drift_detected:
            found_one.append((i, list(one.drifting_features)))
    found_many = []
    for start, end in _batches(len(xs), seed=3):
        found_many += [(start + at, names) for at, names in many.update_many(xs[start:end])]
        assert many.drifting_features == [] or many.drift_detected
    assert len(found_one) >= 3 and found_many == found_one
    assert many.report() == one.report()
    assert many.n_updates == one.n_updates and many._adjusted == one._adjusted
    assert all(_state(many.detectors[n]) == _state(one.detectors[n]) for n in kinds)


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")  # ties: scipy's
def test_monitor_observe_many_equals_observe() -> None:
    xs = _stream(9000, seed=4)
    preds = [min(1.0, max(0.0, (x["total"] if x["total"] == x["total"] else 50) / 150)) for x in xs]
    args: dict[str, Any] = {
        "reference_size": 300,
        "window_size": 300,
        "check_every": 100,
        "clock": lambda: FIXED,
    }
    one, many = Monitor("m", **args), Monitor("m", **args)
    for i, (x, p) in enumerate(zip(xs, preds, strict=True)):
        one.observe(x, p, latency_s=i * 1e-6)
    for start, end in _batches(len(xs), seed=5):
        many.observe_many(xs[start:end], preds[start:end], [i * 1e-6 for i in range(start, end)])
    a, b = one.status(), many.status()
    assert len(a.recent_alarms) >= 3 and {al.kind for al in a.recent_alarms} == {"feature", "prediction"}
    assert b == a
    assert many.drift_active == one.drift_active
    with pytest.raises(ValidationError, match="must be a number"):
        many.observe_many([xs[0]], [True])
    with pytest.raises(ValidationError, match="give one of each"):
        many.observe_many(xs[:2], [0.1])
