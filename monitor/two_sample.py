"""The shared machinery of two-sample drift detectors: a reference sample, a sliding window, a check schedule.

A two-sample detector compares a *reference* sample, drawn by seeded reservoir sampling from the first
``reference_period`` values, with the *current* sliding window of the last ``window_size`` values. Every
``check_every`` updates (once the window is full) it runs a two-sample test. It raises an alarm only when the
test is significant (``p_value < alpha``) **and** the effect size reaches ``min_effect``: with thousands of
values a test is significant for differences too small to matter, and the effect gate keeps those from
flooding alarms.

One drift gives one alarm. What happens after an alarm is chosen by ``on_drift``:

* ``"rebaseline"`` (default): the reference and the window are emptied and a new reference period starts
  with the next value, so the new regime becomes the new normal and the same shift is not reported twice.
  (Re-using the alarming window as the reference would not do: it mixes values from before and after the
  shift, and the next full window would differ from it again.) The detector is blind for
  ``reference_period + window_size`` updates after an alarm; ``drifting`` stays ``True`` until the first
  test against the new reference finds no drift.
* ``"latch"``: the detector keeps testing against the old reference (``statistic`` and ``p_value`` stay
  current) but stays ``drifting`` and raises no further alarm until :meth:`TwoSampleDetector.reset_reference`
  is called (e.g. after retraining), which starts a new reference period.
"""

from __future__ import annotations

import abc
import collections
import itertools
import logging
import random
from collections.abc import Hashable, Sequence
from typing import Any, Literal

from river import base

from hanzo.ml.config.errors import ConfigError

logger = logging.getLogger(__name__)

OnDrift = Literal["rebaseline", "latch"]


class TwoSampleDetector(base.DriftDetector):
    """Base class of the windowed two-sample detectors (:class:`monitor.KSDetector`, ``Chi2Detector``).

    It speaks River's detector protocol: ``update(x)`` returns ``None`` (as ``river.drift.ADWIN`` does in the
    installed River) and ``drift_detected`` is ``True`` on the one update that raised an alarm. Subclasses
    implement :meth:`_test`.

    Parameters
    ----------
    reference_size
        Size of the reference sample (a reservoir sample of the reference period).
    window_size
        Size of the sliding window of current values.
    check_every
        Run the test every this many updates once the window is full.
    alpha
        Significance level of one test.
    min_effect
        Smallest effect size (the test's statistic for KS, Cramér's V for chi-square) that raises an alarm.
    reference_period
        How many of the first values form the reference period; ``None`` means ``reference_size``.
    on_drift
        ``"rebaseline"`` or ``"latch"`` (see the module docstring).
    seed
        Seed of the reservoir sampling.
    """

    #: Name of the test, used as the ``detector`` label of metrics.
    test_name = "two_sample"

    def __init__(
        self,
        reference_size: int = 1000,
        window_size: int = 1000,
        check_every: int = 500,
        alpha: float = 0.01,
        min_effect: float = 0.1,
        reference_period: int | None = None,
        on_drift: OnDrift = "rebaseline",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.reference_size = reference_size
        self.window_size = window_size
        self.check_every = check_every
        self.alpha = alpha
        self.min_effect = min_effect
        self.reference_period = reference_period
        self.on_drift = on_drift
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        for name in ("reference_size", "window_size", "check_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                msg = f"{type(self).__name__}: {name}={value!r} must be an integer >= 2"
                raise ConfigError(msg)
        if not 0.0 < self.alpha < 1.0:
            msg = f"{type(self).__name__}: alpha={self.alpha!r} must be in (0, 1)"
            raise ConfigError(msg)
        if self.on_drift not in ("rebaseline", "latch"):
            msg = f"{type(self).__name__}: on_drift={self.on_drift!r} must be 'rebaseline' or 'latch'"
            raise ConfigError(msg)
        self._rng = random.Random(self.seed)
        self._reference: list[Any] = []
        self._n_reference_seen = 0
        self._reference_ready = False
        self._window: collections.deque[Any] = collections.deque(maxlen=self.window_size)
        self._since_check = 0
        self.n_updates = 0
        self.n_checks = 0
        self.n_alarms = 0
        self.statistic: float | None = None
        self.p_value: float | None = None
        self.drifting = False
        self.last_alarm_at: int | None = None
        self._latched = False

    @property
    def reference_ready(self) -> bool:
        """Whether the reference period is over and the detector is comparing windows."""
        return self._reference_ready

    def update(self, x: Hashable) -> None:
        """Add one value; runs the test when it is due and sets ``drift_detected``.

        Parameters
        ----------
        x
            The value (a number for KS, a category for chi-square).
        """
        if self.step(x) and self.p_value is not None:
            self.conclude(self.p_value < self.alpha)

    def step(self, x: Hashable) -> bool:
        """Add one value and run the test if due, without deciding; returns whether a test ran.

        Used by :class:`monitor.FeatureDriftMonitor`, which decides with p-values corrected across features
        and then calls :meth:`conclude`. ``drift_detected`` is ``False`` after this call.
        """
        self._drift_detected = False
        self.n_updates += 1
        if not self._reference_ready:
            self._add_to_reference(x)
            return False
        self._window.append(x)
        self._since_check += 1
        if len(self._window) < self.window_size or self._since_check < self.check_every:
            return False
        self._run_test()
        return True

    def update_many(self, values: Sequence[Hashable]) -> list[int]:
        """:meth:`update` on each value in turn, in one call; returns the positions that raised an alarm.

        The state afterwards (samples, tests, alarms, ``drift_detected`` of the last value) is the one the
        calls to :meth:`update` would leave: the values between two due tests are added in one step.
        """
        column = self._column(values)
        if column is None:  # a value step() rejects: one at a time, so it raises where it would
            alarms = []
            for i, value in enumerate(values):
                self.update(value)
                if self._drift_detected:
                    alarms.append(i)
            return alarms
        positions, kept = column
        alarms = []
        at = self._advance(kept, 0)
        while at < len(kept):
            self._run_test()
            if self.p_value is not None:
                self.conclude(self.p_value < self.alpha)
            if self._drift_detected:
                alarms.append(positions[at])
            at = self._advance(kept, at + 1)
        self._drift_detected = bool(alarms) and alarms[-1] == len(values) - 1
        return alarms

    def _column(self, values: Sequence[Any]) -> tuple[Sequence[int], list[Any]] | None:
        """The values :meth:`step` adds (as it stores them) and their positions; None if one is rejected.

        A subclass whose ``step`` filters or converts values says how here; one that does not is fed one
        value at a time.
        """
        if type(self).step is not TwoSampleDetector.step and type(self)._column is TwoSampleDetector._column:
            return None
        return range(len(values)), list(values)

    def _advance(self, values: Sequence[Any], start: int) -> int:
        """Add ``values[start:]`` as :meth:`step` does, up to the value after which a test falls due.

        Returns that value's position (the test is not run yet: :meth:`_run_test`), or ``len(values)``.
        """
        self._drift_detected = False
        i, n = start, len(values)
        while i < n:
            if not self._reference_ready:
                self.n_updates += 1
                self._add_to_reference(values[i])
                i += 1
                continue
            due = max(self.window_size - len(self._window), self.check_every - self._since_check, 1)
            take = min(due, n - i)
            self._window.extend(itertools.islice(values, i, i + take))
            self._since_check += take
            self.n_updates += take
            i += take
            if take == due:
                return i - 1
        return n

    def _run_test(self) -> None:
        self._since_check = 0
        self.statistic, self.p_value = self._test(self._reference, list(self._window))
        self.n_checks += 1

    def conclude(self, significant: bool) -> None:
        """Decide on the test that :meth:`step` just ran, given whether it was significant."""
        if self._latched or self.statistic is None:
            return
        drift = significant and self.statistic >= self.min_effect
        if not drift:
            self.drifting = False
            return
        self._drift_detected = True
        self.drifting = True
        self.n_alarms += 1
        self.last_alarm_at = self.n_updates
        logger.debug(
            "%s alarm at update %d: statistic=%.4f p=%.3g",
            type(self).__name__,
            self.n_updates,
            self.statistic,
            self.p_value,
        )
        if self.on_drift == "latch":
            self._latched = True
        else:
            self._rebaseline()

    def reset_reference(self) -> None:
        """Start a new reference period from the next value and release a latch.

        Call it after a latched alarm has been dealt with (e.g. the model was retrained on the new regime).
        """
        self._rebaseline()
        self._latched = False

    def _rebaseline(self) -> None:
        self._reference = []
        self._n_reference_seen = 0
        self._reference_ready = False
        self._window.clear()
        self._since_check = 0

    def _add_to_reference(self, x: Any) -> None:
        """Seeded reservoir sampling (Vitter's algorithm R) over the reference period."""
        self._n_reference_seen += 1
        if len(self._reference) < self.reference_size:
            self._reference.append(x)
        else:
            j = self._rng.randrange(self._n_reference_seen)
            if j < self.reference_size:
                self._reference[j] = x
        period = self.reference_period if self.reference_period is not None else self.reference_size
        if self._n_reference_seen >= max(period, 2):
            self._reference_ready = True

    @abc.abstractmethod
    def _test(self, reference: list[Any], current: list[Any]) -> tuple[float, float]:
        """Return ``(effect_size_statistic, p_value)`` for the two samples."""
