"""ADWIN with one alarm per change, a cool-down, and an optional direction (for loss: only increases)."""

from __future__ import annotations

import logging
from typing import Literal

from river import base, drift

from hanzo.ml.config.errors import ConfigError

logger = logging.getLogger(__name__)

Direction = Literal["increase", "decrease", "both"]


class LossADWIN(base.DriftDetector):
    """``river.drift.ADWIN`` that raises one alarm per change, in the direction that matters.

    Plain ADWIN reports any change of the mean, and can report one change several times in a row (River
    issue #574). For a model's loss only an *increase* is a problem. This wrapper adds:

    * ``direction``: ``"increase"`` (default) alarms only when the mean of the recent sub-window is above the
      mean of the whole window before the cut; ``"decrease"`` the opposite; ``"both"`` any change (use it for
      predictions).
    * ``cooldown``: detections within ``cooldown`` updates of the last alarm are not alarms; ``drifting`` is
      ``True`` for ``cooldown`` updates after an alarm.
    * bookkeeping: ``n_updates``, ``n_alarms``, ``last_alarm_at`` (the update number) and ``last_change``
      (mean after the cut minus mean before it).

    It speaks River's detector protocol: ``update(x)`` returns ``None`` and ``drift_detected`` is ``True`` on
    the update that raised an alarm.

    Parameters
    ----------
    delta
        ADWIN's significance value.
    clock
        ADWIN checks for a change every ``clock`` updates.
    max_buckets
        ADWIN's number of buckets of each size.
    min_window_length
        ADWIN's minimum sub-window length.
    grace_period
        ADWIN does not look for changes before this many values.
    cooldown
        Updates after an alarm during which no new alarm is raised.
    direction
        ``"increase"``, ``"decrease"`` or ``"both"``.

    Examples
    --------
    >>> import random
    >>> from hanzo.ml.monitor import LossADWIN
    >>> rng = random.Random(42)
    >>> detector = LossADWIN()
    >>> losses = [rng.gauss(0.2, 0.05) for _ in range(3000)] + [rng.gauss(0.5, 0.05) for _ in range(3000)]
    >>> for i, loss in enumerate(losses):
    ...     detector.update(loss)
    ...     if detector.drift_detected:
    ...         print(f"loss went up at {i}, change {detector.last_change:+.2f}")
    loss went up at 3039, change +0.06

    A drop of the loss is no alarm with the default direction:

    >>> detector = LossADWIN()
    >>> for loss in reversed(losses):
    ...     detector.update(loss)
    >>> detector.n_alarms
    0

    References
    ----------
    .. [1] Bifet, A. and Gavaldà, R. (2007). Learning from time-changing data with adaptive windowing.
       SIAM International Conference on Data Mining, 443-448.
    .. [2] online-ml/river issue #574: ADWIN reports one drift several times.
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        cooldown: int = 1000,
        direction: Direction = "increase",
    ) -> None:
        super().__init__()
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.cooldown = cooldown
        self.direction = direction
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        if self.direction not in ("increase", "decrease", "both"):
            msg = f"LossADWIN: direction={self.direction!r} must be 'increase', 'decrease' or 'both'"
            raise ConfigError(msg)
        if self.cooldown < 0:
            msg = f"LossADWIN: cooldown={self.cooldown!r} must be >= 0"
            raise ConfigError(msg)
        self._adwin = drift.ADWIN(
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )
        self.n_updates = 0
        self.n_alarms = 0
        self.last_alarm_at: int | None = None
        self.last_change: float | None = None

    @property
    def estimation(self) -> float:
        """Mean of ADWIN's current window."""
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        """Length of ADWIN's current window."""
        return int(self._adwin.width)

    @property
    def drifting(self) -> bool:
        """Whether an alarm was raised within the last ``cooldown`` updates."""
        return self.last_alarm_at is not None and self.n_updates - self.last_alarm_at < max(self.cooldown, 1)

    def update(self, x: int | float) -> None:
        """Add one value; sets ``drift_detected`` when this value raised an alarm."""
        self._drift_detected = False
        self.n_updates += 1
        before = self._adwin.estimation
        self._adwin.update(x)
        if not self._adwin.drift_detected:
            return
        change = self._adwin.estimation - before
        if (self.direction == "increase" and change <= 0) or (self.direction == "decrease" and change >= 0):
            return
        if self.drifting:
            return
        self._drift_detected = True
        self.n_alarms += 1
        self.last_alarm_at = self.n_updates
        self.last_change = float(change)
        logger.debug("ADWIN alarm at update %d: mean changed by %+.4g", self.n_updates, change)
