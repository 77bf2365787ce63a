"""Demand forecasting: SNARIMAX per product against the seasonal naive forecast."""

import math

from hanzo.ml.learners.families import DemandForecaster, evaluate_demand, seasonal_naive
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig


def test_seasonal_naive_repeats_last_week() -> None:
    assert seasonal_naive(range(14), horizon=9) == [7, 8, 9, 10, 11, 12, 13, 7, 8]
    assert seasonal_naive([1, 2], horizon=3) is None


def test_forecast_has_horizon_non_negative_values() -> None:
    f = DemandForecaster(horizon=5)
    for day in range(40):
        f.learn("p", 0.0 if day % 7 else 3.0)
    values = f.forecast("p")
    assert values is not None and len(values) == 5
    assert all(v >= 0 and math.isfinite(v) for v in values)
    assert f.products == ("p",)


def test_learns_weekly_profile_better_than_seasonal_naive() -> None:
    shop = ShopSimulator(ShopSimulatorConfig(seed=3, days=120, demand_products=6))
    rows = [(d, p, float(u)) for d, _, p, u in shop.daily_units()]
    score = evaluate_demand(rows, DemandForecaster(horizon=7))
    # forecasts made at the end of days 27..119, each scored on the days of its horizon that exist
    assert score.forecasts == 6 * sum(min(7, 119 - d) for d in range(27, 120))
    assert score.model_mae < score.baseline_mae


def test_same_seed_same_forecasts() -> None:
    def run() -> list[float] | None:
        shop = ShopSimulator(ShopSimulatorConfig(seed=1, days=40, demand_products=2))
        f = DemandForecaster()
        for _, _, p, u in shop.daily_units():
            f.learn(p, u)
        return f.forecast(shop.demand_products[0])

    assert run() == run()
