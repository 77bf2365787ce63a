"""Demand forecasting: one River SNARIMAX per product on its daily units sold, H-day forecasts.

The baseline is the seasonal naive forecast (each of the next days sells what the same weekday sold last
week). Both are scored by the mean absolute error over every (product, day, horizon step) forecast made
after the warm-up, forecast first and learned after (progressive).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from river import linear_model, optim, preprocessing, time_series

from hanzo.ml.learners.families.keys import family_key, write_json

logger = logging.getLogger(__name__)

__all__ = ["DemandForecaster", "DemandScore", "evaluate_demand", "seasonal_naive"]

SEASON = 7


def seasonal_naive(history: Iterable[float], horizon: int, season: int = SEASON) -> list[float] | None:
    """Forecast each of the next ``horizon`` days as the same day one season earlier (None: too short).

    Examples
    --------
    >>> seasonal_naive([1, 2, 3, 4, 5, 6, 7, 8], horizon=3)
    [2, 3, 4]
    """
    last = list(history)[-season:]
    if len(last) < season:
        return None
    return [last[h % season] for h in range(horizon)]


class DemandForecaster:
    """Per-product SNARIMAX forecasts of daily units sold.

    Parameters
    ----------
    horizon
        Days forecast ahead (the length of each ``forecast:{product}`` list).
    p, d, q, m, sp, sd, sq
        SNARIMAX orders (River's names): ``m`` is the season (7 days), ``sp`` the seasonal lags.
    lr
        Learning rate of the SGD linear regression SNARIMAX fits on its lags.
    intercept_lr
        Learning rate of that regression's intercept.
    model
        A River forecaster to clone for each product instead (e.g. the one a pipeline spec's ``model``
        section builds); the orders and learning rates above are then not used.

    Examples
    --------
    >>> f = DemandForecaster(horizon=3)
    >>> for day in range(60):
    ...     f.learn("p1", 10.0 + (5.0 if day % 7 == 5 else 0.0))
    >>> [round(v) for v in f.forecast("p1")]  # day 60 is a plain day, day 61 the busy one
    [10, 15, 10]
    >>> len(f.forecast("p1")), f.forecast("unknown")
    (3, None)
    """

    def __init__(
        self,
        horizon: int = 7,
        p: int = 0,
        d: int = 0,
        q: int = 0,
        m: int = SEASON,
        sp: int = 4,
        sd: int = 0,
        sq: int = 0,
        lr: float = 0.01,
        intercept_lr: float = 0.1,
        model: Any | None = None,
    ) -> None:
        self.horizon = horizon
        self.p, self.d, self.q, self.m, self.sp, self.sd, self.sq = p, d, q, m, sp, sd, sq
        self.lr = lr
        self.intercept_lr = intercept_lr
        self.model = model
        self._reset()

    def _reset(self) -> None:
        self._models: dict[str, Any] = {}
        self._seen: dict[str, int] = {}

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any], horizon: int = 7) -> DemandForecaster:
        """Build from a pipeline's ``model.hyperparameters`` (SNARIMAX orders, ``lr``, ``intercept_lr``)."""
        return cls(horizon=horizon, **dict(hyperparameters))

    def _new(self) -> Any:
        if self.model is not None:
            return self.model.clone()
        regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=optim.SGD(self.lr), intercept_lr=self.intercept_lr
        )
        return time_series.SNARIMAX(
            p=self.p, d=self.d, q=self.q, m=self.m, sp=self.sp, sd=self.sd, sq=self.sq, regressor=regressor
        )

    def learn(self, product_id: str, units: float) -> None:
        """Learn the product's next day of units sold."""
        model = self._models.get(product_id)
        if model is None:
            model = self._models[product_id] = self._new()
        model.learn_one(float(units))
        self._seen[product_id] = self._seen.get(product_id, 0) + 1

    def forecast(self, product_id: str) -> list[float] | None:
        """Units expected on each of the next ``horizon`` days (never below 0); None for an unseen product."""
        model = self._models.get(product_id)
        if model is None:
            return None
        return [max(0.0, float(v)) for v in model.forecast(horizon=self.horizon)]

    @property
    def products(self) -> tuple[str, ...]:
        """The products learned so far."""
        return tuple(self._models)

    def publish(self, client: Any, prefix: str = "", ttl_s: int = 86_400) -> int:
        """Write ``{prefix}forecast:{product}`` (JSON list of ``horizon`` floats) for every product."""
        items = []
        for pid in self._models:
            values = self.forecast(pid)
            if values is not None:
                items.append((family_key("forecast", pid, prefix), [round(v, 3) for v in values]))
        return write_json(client, items, ttl_s)


@dataclass(frozen=True)
class DemandScore:
    """MAE of the model and of the seasonal naive baseline over the same forecasts."""

    model_mae: float
    baseline_mae: float
    forecasts: int


def evaluate_demand(
    rows: Iterable[tuple[int, str, float]], forecaster: DemandForecaster, warmup_days: int = 28
) -> DemandScore:
    """Progressive evaluation on ``(day, product, units)`` rows in day order.

    Before each product's day is learned, the model's and the baseline's forecasts made on the previous day
    are kept; each later day scores them against the truth. Days before ``warmup_days`` are learned but not
    scored.
    """
    horizon = forecaster.horizon
    history: dict[str, deque[float]] = {}
    pending: dict[str, list[tuple[int, list[float], list[float]]]] = {}
    err_model = err_base = 0.0
    n = 0
    for day, pid, units in rows:
        for made, fc_made, base_made in pending.get(pid, []):
            step = day - made - 1
            if 0 <= step < horizon:
                err_model += abs(fc_made[step] - units)
                err_base += abs(base_made[step] - units)
                n += 1
        pending[pid] = [item for item in pending.get(pid, []) if day - item[0] < horizon]
        forecaster.learn(pid, units)
        past = history.setdefault(pid, deque(maxlen=SEASON))
        past.append(float(units))
        if day + 1 >= warmup_days:
            fc = forecaster.forecast(pid)
            base = seasonal_naive(past, horizon)
            if fc is not None and base is not None:
                pending[pid].append((day, fc, base))
    if n == 0:
        return DemandScore(float("nan"), float("nan"), 0)
    return DemandScore(err_model / n, err_base / n, n)
