"""Chi-square drift detector for categorical values, with Cramér's V as the effect size."""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy import stats

from hanzo.ml.monitor.two_sample import TwoSampleDetector

logger = logging.getLogger(__name__)


class Chi2Detector(TwoSampleDetector):
    """Chi-square test of homogeneity between the category mix of a reference sample and a sliding window.

    Every ``check_every`` updates (once ``window_size`` values followed the reference period) it builds the
    2 x K contingency table of category counts (categories seen in either sample) and runs
    :func:`scipy.stats.chi2_contingency`. The effect size is Cramér's V, ``sqrt(chi2 / n)`` for two samples,
    in [0, 1] and independent of the sample size; an alarm needs ``p_value < alpha`` **and**
    ``V >= min_effect``. ``statistic`` holds V (not chi2). ``None`` values are skipped; any other hashable
    value is a category. After an alarm it re-baselines or latches; see :mod:`monitor.two_sample`.

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
        Smallest Cramér's V that raises an alarm.
    reference_period
        How many of the first values form the reference period; ``None`` means ``reference_size``.
    on_drift
        ``"rebaseline"`` or ``"latch"``.
    seed
        Seed of the reservoir sampling.

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import Chi2Detector
    >>> rng = random.Random(3)
    >>> chi2 = Chi2Detector(reference_size=500, window_size=500, check_every=100, seed=1)
    >>> before = rng.choices(["card", "paypal", "invoice"], weights=[6, 3, 1], k=2000)
    >>> after = rng.choices(["card", "paypal", "invoice"], weights=[3, 3, 4], k=2000)
    >>> alarms = []
    >>> for i, method in enumerate(before + after):
    ...     chi2.update(method)
    ...     if chi2.drift_detected:
    ...         alarms.append(i)
    >>> alarms
    [2099]
    >>> chi2.n_alarms
    1

    References
    ----------
    .. [1] Cramér, H. (1946). Mathematical Methods of Statistics. Princeton University Press, p. 282.
    """

    test_name = "chi2"

    def step(self, x: Hashable) -> bool:
        """Add one category and run the test if due; ``None`` is skipped. Returns whether a test ran."""
        if x is None:
            self._drift_detected = False
            return False
        return super().step(x)

    def _test(self, reference: list[Any], current: list[Any]) -> tuple[float, float]:
        ref_counts = collections.Counter(reference)
        cur_counts = collections.Counter(current)
        categories = sorted(set(ref_counts) | set(cur_counts), key=repr)
        if len(categories) < 2:
            return 0.0, 1.0
        table = np.array([[ref_counts[c] for c in categories], [cur_counts[c] for c in categories]])
        result = stats.chi2_contingency(table, correction=False)
        n = float(table.sum())
        cramers_v = math.sqrt(float(result.statistic) / n) if n else 0.0
        return min(cramers_v, 1.0), float(result.pvalue)
