"""Price optimization: a contextual bandit over price points, maximising revenue.

Each price point has its own River ``linear_model.BayesianLinearRegression`` of the reward on the context
(the arms of River's ``bandit.LinUCBDisjoint``). An arm is chosen by the upper confidence bound of its
expected reward (``policy="ucb"``, LinUCB) or by a draw from its posterior (``policy="thompson"``, linear
Thompson sampling). Unlike ``LinUCBDisjoint``, the bound and the draw use the uncertainty of the expected
reward only: River's predictive ``sigma`` also holds the reward noise ``1 / beta``, which is the same for
every arm and never shrinks, so it is taken out.

Each arm is a price multiplier of the list price. The context of a visit is the product, its category and
the visitor's segment (one-hot) plus a bias; the reward is the revenue of the visit divided by the list
price (``multiplier`` when the visitor buys, else 0), so one linear model per arm serves every product.
Baselines: the best fixed price per product in hindsight (the multiplier that earned most on that product's
visits, chosen after seeing them all) and a uniformly random price. The metric is cumulative revenue.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from river import linear_model

from hanzo.ml.learners.families.keys import family_key, write_json

logger = logging.getLogger(__name__)

__all__ = ["PriceOptimizer", "PriceScore", "Visit", "evaluate_pricing"]


class Visit(Protocol):
    """What a visit tells the optimizer (``streams.simulation.shop.PriceVisit`` is one)."""

    product_id: str
    segment: str


class PriceOptimizer:
    """A contextual bandit over price multipliers; the chosen price per product and visitor segment.

    Parameters
    ----------
    price_points
        The multipliers of the list price to choose from.
    list_prices
        ``{product_id: list price}``; products not listed cannot be priced.
    categories
        ``{product_id: category}`` (a context feature; optional).
    alpha, beta
        Prior precision of the weights and noise precision of each arm's Bayesian linear regression.
    policy
        ``ucb`` (mean + ``exploration`` x posterior sd) or ``thompson`` (a posterior draw, sd x
        ``exploration``).
    exploration
        Scale of the posterior sd in the bound or the draw.
    seed
        Seed of Thompson draws and tie breaking.

    Examples
    --------
    >>> opt = PriceOptimizer((0.9, 1.0, 1.1), {"p1": 10.0}, seed=1)
    >>> m = opt.choose("p1", "occasional")
    >>> opt.learn("p1", "occasional", m, revenue=10.0 * m)
    >>> opt.choose("p1", "occasional") in (0.9, 1.0, 1.1)
    True
    """

    def __init__(
        self,
        price_points: Sequence[float],
        list_prices: Mapping[str, float],
        categories: Mapping[str, str] | None = None,
        alpha: float = 1.0,
        beta: float = 20.0,
        policy: Literal["ucb", "thompson"] = "ucb",
        exploration: float = 1.0,
        seed: int = 42,
    ) -> None:
        self.price_points = tuple(price_points)
        self.list_prices = dict(list_prices)
        self.categories = dict(categories or {})
        self.alpha = alpha
        self.beta = beta
        self.policy = policy
        self.exploration = exploration
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._arms = list(range(len(self.price_points)))
        self._regs = [
            linear_model.BayesianLinearRegression(alpha=self.alpha, beta=self.beta) for _ in self._arms
        ]
        self._rng = random.Random(self.seed)
        self._segments: set[str] = set()

    def _posterior(self, arm: int, x: dict[str, float]) -> tuple[float, float]:
        dist = self._regs[arm].predict_one(x, with_dist=True)
        var = max(float(dist.sigma) ** 2 - 1.0 / self.beta, 0.0)
        return float(dist.mu), math.sqrt(var)

    def context(self, product_id: str, segment: str | None) -> dict[str, float]:
        """The visit's context: bias, product, category and segment one-hot."""
        x = {"bias": 1.0, f"product={product_id}": 1.0}
        category = self.categories.get(product_id)
        if category is not None:
            x[f"category={category}"] = 1.0
        if segment is not None:
            x[f"segment={segment}"] = 1.0
        return x

    def choose(self, product_id: str, segment: str | None) -> float:
        """The multiplier to show this visitor (explores by the upper confidence bound)."""
        x = self.context(product_id, segment)
        values = []
        for arm in self._arms:
            mu, sd = self._posterior(arm, x)
            z = self._rng.gauss(0.0, 1.0) if self.policy == "thompson" else 1.0
            values.append((mu + self.exploration * z * sd, self._rng.random()))
        return self.price_points[max(self._arms, key=lambda a: values[a])]

    def learn(self, product_id: str, segment: str | None, multiplier: float, revenue: float) -> None:
        """Learn the revenue the shown ``multiplier`` earned on one visit."""
        if segment is not None:
            self._segments.add(segment)
        reward = revenue / self.list_prices[product_id]
        arm = self.price_points.index(multiplier)
        self._regs[arm].learn_one(self.context(product_id, segment), reward)

    def best(self, product_id: str, segment: str | None) -> float:
        """The multiplier with the highest expected revenue (no exploration bonus)."""
        x = self.context(product_id, segment)
        means = [float(self._regs[arm].predict_one(x)) for arm in self._arms]
        return self.price_points[max(self._arms, key=lambda a: (means[a], -a))]

    def publish(self, client: Any, prefix: str = "", ttl_s: int = 86_400) -> int:
        """Write ``{prefix}price:{product}``: ``{"price", "multiplier", "by_segment": {segment: price}}``."""
        items = []
        for pid, list_price in self.list_prices.items():
            m = self.best(pid, None)
            by_segment = {s: round(list_price * self.best(pid, s), 2) for s in sorted(self._segments)}
            value = {"price": round(list_price * m, 2), "multiplier": m, "by_segment": by_segment}
            items.append((family_key("price", pid, prefix), value))
        return write_json(client, items, ttl_s)


@dataclass(frozen=True)
class PriceScore:
    """Cumulative revenue of the bandit and of the two baselines over the same visits."""

    model_revenue: float
    best_fixed_revenue: float
    random_revenue: float
    visits: int


def evaluate_pricing(
    visits: Iterable[Any],
    optimizer: PriceOptimizer,
    bought: Callable[[Any, float], bool],
    seed: int = 0,
) -> PriceScore:
    """Run the bandit over ``visits`` (each with ``product_id`` and ``segment``) and score it.

    ``bought(visit, multiplier)`` says whether the visitor buys at that multiplier; it must answer the same
    for the same visit (common random numbers), so the hindsight baseline replays the very same visitors.
    """
    rng = random.Random(seed)
    points = optimizer.price_points
    model = rand = 0.0
    fixed: dict[str, list[float]] = {}
    n = 0
    for v in visits:
        price = optimizer.list_prices[v.product_id]
        m = optimizer.choose(v.product_id, v.segment)
        revenue = price * m if bought(v, m) else 0.0
        optimizer.learn(v.product_id, v.segment, m, revenue)
        model += revenue
        r = rng.choice(points)
        rand += price * r if bought(v, r) else 0.0
        per_point = fixed.setdefault(v.product_id, [0.0] * len(points))
        for i, point in enumerate(points):
            if bought(v, point):
                per_point[i] += price * point
        n += 1
    best_fixed = sum(max(values) for values in fixed.values())
    return PriceScore(model, best_fixed, rand, n)
