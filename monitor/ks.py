"""Kolmogorov-Smirnov drift detector for numeric values (features, predictions)."""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.monitor.two_sample import TwoSampleDetector

logger = logging.getLogger(__name__)


class KSDetector(TwoSampleDetector):
    """Two-sample Kolmogorov-Smirnov test between a reference sample and a sliding window.

    Every ``check_every`` updates (once ``window_size`` values followed the reference period) it runs
    :func:`scipy.stats.ks_2samp`. An alarm needs ``p_value < alpha`` **and** ``statistic >= min_effect``: the
    KS statistic is the largest gap between the two empirical CDFs, an effect size in [0, 1] that does not
    grow with the sample size, so a large stream does not turn negligible differences into alarms. After an
    alarm the detector re-baselines (default) or latches; see :mod:`monitor.two_sample`. ``NaN`` values are
    skipped. The detector exposes ``statistic`` and ``p_value`` of the last test.

    Parameters
    ----------
    reference_size
        Size of the reference sample (a seeded reservoir sample of the reference period).
    window_size
        Size of the sliding window of current values.
    check_every
        Run the test every this many updates once the window is full.
    alpha
        Significance level of one test.
    min_effect
        Smallest KS statistic that raises an alarm.
    reference_period
        How many of the first values form the reference period; ``None`` means ``reference_size``.
    on_drift
        ``"rebaseline"`` (a new reference period starts after an alarm) or ``"latch"`` (no further alarm
        until :meth:`reset_reference`).
    seed
        Seed of the reservoir sampling.

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import KSDetector
    >>> rng = random.Random(7)
    >>> ks = KSDetector(reference_size=500, window_size=500, check_every=100, seed=1)
    >>> stream = [rng.gauss(0, 1) for _ in range(2000)] + [rng.gauss(1, 1) for _ in range(2000)]
    >>> alarms = []
    >>> for i, x in enumerate(stream):
    ...     ks.update(x)
    ...     if ks.drift_detected:
    ...         alarms.append(i)
    >>> alarms
    [2199]
    >>> ks.n_alarms  # re-baselined on the new regime: one alarm for one shift
    1

    References
    ----------
    .. [1] Hodges, J. L. (1958). The significance probability of the Smirnov two-sample test.
       Arkiv för Matematik, 3(5), 469-486.
    .. [2] evidentlyai/evidently issue #50: statistical tests on large samples flag negligible drift.
    """

    test_name = "ks"

    def step(self, x: Hashable) -> bool:
        """Add one number and run the test if due; ``NaN`` is skipped. Returns whether a test ran."""
        if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
            msg = f"KSDetector takes numbers, got {x!r} ({type(x).__name__}); use Chi2Detector for categories"
            raise ValidationError(msg)
        value = float(x)
        if math.isnan(value):
            self._drift_detected = False
            return False
        return super().step(value)

    def _column(self, values: Sequence[Any]) -> tuple[Sequence[int], list[Any]] | None:
        """The values as floats, ``NaN`` left out, and their positions; None if one is not a number."""
        positions: list[int] = []
        kept: list[float] = []
        for i, x in enumerate(values):
            if type(x) is not float:
                if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
                    return None
                x = float(x)
            if x == x:  # not NaN
                positions.append(i)
                kept.append(x)
        return positions, kept

    def _test(self, reference: list[Any], current: list[Any]) -> tuple[float, float]:
        result = stats.ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
        return float(result.statistic), float(result.pvalue)
