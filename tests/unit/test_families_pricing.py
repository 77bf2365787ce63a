"""Price optimization: LinUCB over price points against the best fixed price in hindsight and random."""

from hanzo.ml.learners.families import PriceOptimizer, evaluate_pricing
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig


def test_purchase_probability_falls_with_price() -> None:
    shop = ShopSimulator(ShopSimulatorConfig(seed=1, visits=0))
    pid = shop.experiment_products[0]
    probs = [shop.purchase_probability(pid, m, "occasional") for m in shop.config.price_points]
    assert probs == sorted(probs, reverse=True)
    p = shop.purchase_probability
    assert p(pid, 1.2, "bargain_hunter") < p(pid, 1.2, "big_spender")


def test_choices_are_price_points() -> None:
    opt = PriceOptimizer((0.8, 1.0, 1.2), {"p": 10.0}, {"p": "books"}, seed=3)
    for _ in range(20):
        m = opt.choose("p", "frequent")
        assert m in (0.8, 1.0, 1.2)
        opt.learn("p", "frequent", m, revenue=10.0 * m if m < 1.1 else 0.0)
    assert opt.best("p", "frequent") in (0.8, 1.0)


def test_bandit_beats_random_prices_and_learns_segments() -> None:
    shop = ShopSimulator(ShopSimulatorConfig(seed=2, visits=6000, experiment_products=10))
    pids = shop.experiment_products
    opt = PriceOptimizer(shop.config.price_points, {p: shop.products[p].list_price for p in pids},
                         {p: shop.products[p].category for p in pids})
    score = evaluate_pricing(shop.price_visits(), opt, shop.bought, seed=2)
    assert score.visits == 6000
    # beating the best fixed price in hindsight needs a longer stream: tests/unit/test_quality_small.py
    assert score.model_revenue > score.random_revenue
