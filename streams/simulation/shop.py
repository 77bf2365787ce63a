"""The simulated shop floor: daily demand, search sessions, shopping interactions and price experiments.

:class:`ShopSimulator` builds on the same :class:`~streams.simulation.catalog.Catalog` and
:class:`~streams.simulation.customers.Population` as the order stream and adds the ground truth the commerce
model families learn from:

- **demand**: every product sells ``Poisson(lambda)`` units a day, ``lambda`` = the product's base rate x its
  category's weekday profile x a slow trend x a yearly wave (:meth:`ShopSimulator.daily_units`);
- **search**: a query is a category and a word (``"books cheap"``); products carry text tags (noisy copies of
  their true attributes) and a latent quality; a session shows the query's candidates in random order and
  the customer clicks and buys by the true relevance (:meth:`ShopSimulator.sessions`);
- **shopping**: customers have a latent taste (a vector) and favourite categories; each purchase follows
  views of a few products of the same category and an add-to-cart; a share of purchases are repeats
  (:meth:`ShopSimulator.interactions`);
- **price experiments**: visits to a few experiment products; the probability to buy at price multiplier
  ``m`` is ``base x exp(-elasticity x (m - 1))``, with an elasticity that depends on the product, its category
  and the visitor's segment (:meth:`ShopSimulator.purchase_probability`). Each visit carries its own uniform
  draw, so every pricing policy is judged on the same customers (common random numbers).

Each generator restarts from the seed; the same config gives the same streams.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from hanzo.ml.streams.simulation.activity import SEARCH_WORDS, poisson
from hanzo.ml.streams.simulation.catalog import CATEGORIES, Catalog
from hanzo.ml.streams.simulation.config import DEFAULT_START_TIME_MS
from hanzo.ml.streams.simulation.customers import DAY_MS, SEGMENTS, Customer, Population

logger = logging.getLogger(__name__)

__all__ = [
    "Interaction",
    "PriceVisit",
    "SearchSession",
    "ShopProduct",
    "ShopSimulator",
    "ShopSimulatorConfig",
]

#: Weekday demand profile per category (Monday first); mean 1.
_WEEKDAY = {
    "grocery": (1.0, 0.9, 0.9, 1.0, 1.3, 1.4, 0.5),
    "electronics": (0.8, 0.8, 0.9, 0.9, 1.1, 1.6, 0.9),
    "fashion": (0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 0.8),
    "toys": (0.7, 0.7, 0.8, 0.9, 1.1, 1.6, 1.2),
    "books": (0.9, 0.9, 1.0, 1.0, 1.0, 1.1, 1.1),
}
_WEEKDAY_DEFAULT = (0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 0.8)
#: Categories whose buyers are more (> 1) or less (< 1) price sensitive than average.
_CATEGORY_ELASTICITY = {"grocery": 1.3, "books": 1.2, "fashion": 1.1, "electronics": 0.9, "jewelry": 0.7}
#: Segments' price sensitivity.
_SEGMENT_ELASTICITY = {"bargain_hunter": 2.5, "frequent": 1.5, "occasional": 0.8, "big_spender": 0.3}
#: Words of queries that favour cheap (-1) or expensive (+1) products.
_PRICE_WORDS = {"cheap": -1.0, "deal": -1.0, "sale": -1.0, "premium": 1.0, "pro": 1.0}
_N_TASTE = 4


class ShopSimulatorConfig(BaseModel):
    """Everything that shapes the shop floor; the same config gives the same streams.

    Parameters
    ----------
    seed
        Seed of the random generators.
    products
        Products in the catalogue (the same :class:`~streams.simulation.catalog.Catalog` as the order stream).
    customers
        Customers who shop and search.
    days
        Days of daily demand.
    demand_products
        How many of the most popular products have their daily demand simulated.
    weekly_amplitude
        Scales the weekday profile of demand (0: no weekly seasonality, 1: the profiles as defined).
    sessions
        Search sessions.
    shown_per_session
        Products shown per search session (at most the query's candidates).
    purchases
        Purchases in the shopping-interaction stream (each comes with views and an add-to-cart).
    repeat_share
        Share of purchases that repeat one of the customer's earlier purchases.
    visits
        Visits in the price experiment.
    experiment_products
        How many of the most popular products take part in the price experiment.
    price_points
        The price multipliers (of the list price) a pricing policy may choose from.
    start_time_ms
        Event time of day 0 (epoch milliseconds).
    id_prefix
        Prefix of product and customer ids (default ``shop<seed>``, apart from the order stream's ids).

    Examples
    --------
    >>> cfg = ShopSimulatorConfig(seed=3)
    >>> cfg.price_points
    (0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.5)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0)
    products: int = Field(200, ge=10, le=100_000)
    customers: int = Field(400, ge=1, le=1_000_000)
    days: int = Field(180, ge=1, le=3650)
    demand_products: int = Field(40, ge=1)
    weekly_amplitude: float = Field(1.0, ge=0, le=2)
    sessions: int = Field(4000, ge=0)
    shown_per_session: int = Field(20, ge=2, le=200)
    purchases: int = Field(8000, ge=0)
    repeat_share: float = Field(0.3, ge=0, le=1)
    visits: int = Field(20_000, ge=0)
    experiment_products: int = Field(20, ge=1)
    price_points: tuple[float, ...] = Field((0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.5), min_length=2)
    start_time_ms: int = DEFAULT_START_TIME_MS
    id_prefix: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class ShopProduct:
    """One product with its ground truth.

    ``tags`` are the words in its title (what a search engine sees); ``attributes`` the words that truly
    describe it; ``quality`` a latent appeal; ``elasticity`` its own price sensitivity factor.
    """

    product_id: str
    category: str
    list_price: float
    popularity: float
    quality: float
    elasticity: float
    base_units: float
    attributes: frozenset[str]
    tags: frozenset[str]
    taste: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class SearchSession:
    """One search: the query, the products shown (in display order), and those clicked and bought."""

    session_id: str
    customer_id: str
    time_ms: int
    query: str
    shown: tuple[str, ...]
    clicks: frozenset[str]
    purchases: frozenset[str]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One customer-product interaction: ``view``, ``add_to_cart`` or ``purchase``."""

    time_ms: int
    customer_id: str
    product_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class PriceVisit:
    """A visit to an experiment product; the visitor buys at multiplier m iff ``u < P(buy | m)``."""

    time_ms: int
    product_id: str
    customer_id: str
    segment: str
    weekday: int
    u: float


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class ShopSimulator:
    """A seeded shop floor with known ground truth (see the module docstring).

    Parameters
    ----------
    config
        The :class:`ShopSimulatorConfig`.

    Examples
    --------
    >>> shop = ShopSimulator(ShopSimulatorConfig(seed=1, products=50, days=14, sessions=5, purchases=5,
    ...                                          visits=5, demand_products=3))
    >>> rows = list(shop.daily_units())
    >>> len(rows), rows[0][0]
    (42, 0)
    >>> s = next(shop.sessions())
    >>> s.query.split()[0] in shop.categories, set(s.clicks) <= set(s.shown)
    (True, True)
    >>> v = next(shop.price_visits())
    >>> 0 < shop.purchase_probability(v.product_id, 1.0, v.segment) < 1
    True
    """

    def __init__(self, config: ShopSimulatorConfig) -> None:
        self.config = config
        self._reset()

    def _reset(self) -> None:
        cfg = self.config
        rng = random.Random(cfg.seed)
        prefix = cfg.id_prefix or f"shop{cfg.seed}"
        self.prefix = prefix
        self.catalog = Catalog(cfg.products, rng, prefix)
        self.categories = tuple(c.name for c in CATEGORIES)
        medians = {c.name: c.median_price for c in CATEGORIES}
        self.products: dict[str, ShopProduct] = {}
        for p in self.catalog.products:
            ratio = math.log(p.price / medians[p.category])
            attributes = set(rng.sample(SEARCH_WORDS, 2))
            if ratio < -0.3:
                attributes.add(rng.choice(("cheap", "deal", "sale")))
            elif ratio > 0.3:
                attributes.add(rng.choice(("premium", "pro")))
            tags = {w for w in attributes if rng.random() < 0.75} | {rng.choice(SEARCH_WORDS)}
            popularity = math.exp(rng.gauss(0.0, 1.0))
            self.products[p.product_id] = ShopProduct(
                product_id=p.product_id,
                category=p.category,
                list_price=p.price,
                popularity=popularity,
                quality=rng.gauss(0.0, 1.0),
                elasticity=math.exp(rng.gauss(0.0, 0.15)) * _CATEGORY_ELASTICITY.get(p.category, 1.0),
                base_units=2.0 + 20.0 * popularity / (1.0 + popularity) * rng.uniform(0.5, 1.5),
                attributes=frozenset(attributes),
                tags=frozenset(tags),
                taste=tuple(rng.gauss(0.0, 1.0) for _ in range(_N_TASTE)),
            )
        self.by_category: dict[str, list[str]] = {c: [] for c in self.categories}
        for pid, sp in self.products.items():
            self.by_category[sp.category].append(pid)
        ranked = sorted(self.products, key=lambda pid: -self.products[pid].popularity)
        self.demand_products = tuple(ranked[: cfg.demand_products])
        self.experiment_products = tuple(ranked[: cfg.experiment_products])
        self.queries = tuple(f"{c.replace('_', ' ')} {w}" for c in self.categories for w in SEARCH_WORDS)
        self._query_category = {
            f"{c.replace('_', ' ')} {w}": c for c in self.categories for w in SEARCH_WORDS
        }
        self.population = Population()
        self.customers: dict[str, Customer] = {}
        self._taste: dict[str, tuple[float, ...]] = {}
        for i in range(cfg.customers):
            c = self.population.new_customer(rng, f"{prefix}-c{i:07d}", cfg.start_time_ms)
            self.population.add(c)
            self.customers[c.customer_id] = c
            self._taste[c.customer_id] = tuple(rng.gauss(0.0, 1.0) for _ in range(_N_TASTE))
        self.segment_names = tuple(s.name for s in SEGMENTS)

    # ------------------------------------------------------------------ demand

    def expected_units(self, product_id: str, day: int) -> float:
        """The true mean of the product's units sold on ``day`` (0-based from ``start_time_ms``)."""
        sp = self.products[product_id]
        weekday = self.weekday(day)
        profile = _WEEKDAY.get(sp.category, _WEEKDAY_DEFAULT)[weekday]
        season = 1.0 + self.config.weekly_amplitude * (profile - 1.0)
        trend = 1.0 + 0.002 * day
        yearly = 1.0 + 0.15 * math.sin(2 * math.pi * day / 365.0)
        return sp.base_units * season * trend * yearly

    def weekday(self, day: int) -> int:
        """Weekday (Monday 0) of ``day``."""
        return (int(self.config.start_time_ms // DAY_MS) + 3 + day) % 7  # 1970-01-01 was a Thursday

    def daily_units(self) -> Iterator[tuple[int, int, str, int]]:
        """Yield ``(day, day_start_ms, product_id, units)`` for every day and demand product, day by day."""
        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + 1)
        for day in range(cfg.days):
            start = cfg.start_time_ms + day * DAY_MS
            for pid in self.demand_products:
                yield day, start, pid, poisson(rng, self.expected_units(pid, day))

    # ------------------------------------------------------------------ search

    def query_category(self, query: str) -> str:
        """The category a query names."""
        return self._query_category[query]

    def candidates(self, query: str) -> list[str]:
        """The products a query can show: every product of its category."""
        return list(self.by_category[self.query_category(query)])

    def relevance(self, query: str, product_id: str) -> float:
        """The true appeal of ``product_id`` for ``query`` (higher: more clicks and purchases)."""
        sp = self.products[product_id]
        word = query.rsplit(" ", 1)[1]
        ratio = math.log(sp.list_price / next(c.median_price for c in CATEGORIES if c.name == sp.category))
        rel = 1.5 * (word in sp.attributes) + 0.8 * sp.quality + 0.3 * math.log(sp.popularity)
        return rel + 1.2 * _PRICE_WORDS.get(word, 0.0) * ratio

    def sessions(self) -> Iterator[SearchSession]:
        """Yield the search sessions in time order; products are shown in random order (exploration)."""
        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + 2)
        span = cfg.days * DAY_MS
        for i in range(cfg.sessions):
            t = cfg.start_time_ms + int(span * i / max(cfg.sessions, 1))
            c = self._pick_customer(rng, t)
            category = rng.choice(c.categories) if rng.random() < 0.8 else rng.choice(self.categories)
            query = f"{category.replace('_', ' ')} {rng.choice(SEARCH_WORDS)}"
            pool = self.by_category[category]
            shown = tuple(rng.sample(pool, min(cfg.shown_per_session, len(pool))))
            clicks: set[str] = set()
            buys: set[str] = set()
            for pos, pid in enumerate(shown):
                rel = self.relevance(query, pid)
                if rng.random() < _sigmoid(rel - 2.0) * (1.0 / (1.0 + 0.05 * pos)):
                    clicks.add(pid)
                    if rng.random() < 0.5 * _sigmoid(rel - 1.0):
                        buys.add(pid)
            sid = f"{self.prefix}-q{i:07d}"
            yield SearchSession(sid, c.customer_id, t, query, shown, frozenset(clicks), frozenset(buys))

    # ------------------------------------------------------------------ shopping

    def affinity(self, customer_id: str, product_id: str) -> float:
        """The customer's true taste for the product (a dot product of latent vectors)."""
        u, v = self._taste[customer_id], self.products[product_id].taste
        return sum(a * b for a, b in zip(u, v, strict=True)) / math.sqrt(_N_TASTE)

    def interactions(self) -> Iterator[Interaction]:
        """Yield views, add-to-carts and purchases in time order; every purchase ends its own little visit."""
        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + 3)
        span = cfg.days * DAY_MS
        history: dict[str, list[str]] = {}
        for i in range(cfg.purchases):
            t = cfg.start_time_ms + int(span * i / max(cfg.purchases, 1))
            c = self._pick_customer(rng, t)
            own = history.setdefault(c.customer_id, [])
            if own and rng.random() < cfg.repeat_share:
                bought = rng.choice(own)
                category = self.products[bought].category
            else:
                category = rng.choice(c.categories) if rng.random() < 0.85 else rng.choice(self.categories)
                bought = self._by_taste(rng, c.customer_id, category)
            for k in range(rng.randint(1, 3)):
                viewed = self._by_taste(rng, c.customer_id, category)
                yield Interaction(t - (4 - k) * 60_000, c.customer_id, viewed, "view")
            yield Interaction(t - 30_000, c.customer_id, bought, "add_to_cart")
            yield Interaction(t, c.customer_id, bought, "purchase")
            own.append(bought)

    def _by_taste(self, rng: random.Random, customer_id: str, category: str) -> str:
        pool = self.by_category[category]
        weights = [self.products[p].popularity * math.exp(1.5 * self.affinity(customer_id, p)) for p in pool]
        return rng.choices(pool, weights=weights)[0]

    def _pick_customer(self, rng: random.Random, t: int) -> Customer:
        c = self.population.pick(rng, t)
        assert c is not None  # nobody churns on the shop floor
        return c

    # ------------------------------------------------------------------ prices

    def purchase_probability(self, product_id: str, multiplier: float, segment: str) -> float:
        """P(a visitor of ``segment`` buys ``product_id`` at ``multiplier`` x its list price)."""
        sp = self.products[product_id]
        elasticity = sp.elasticity * _SEGMENT_ELASTICITY.get(segment, 1.0)
        return min(1.0, 0.12 * math.exp(-elasticity * (multiplier - 1.0)))

    def price_visits(self) -> Iterator[PriceVisit]:
        """Yield the price experiment's visits in time order."""
        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + 4)
        span = cfg.days * DAY_MS
        weights = [self.products[p].popularity for p in self.experiment_products]
        for i in range(cfg.visits):
            t = cfg.start_time_ms + int(span * i / max(cfg.visits, 1))
            c = self._pick_customer(rng, t)
            pid = rng.choices(self.experiment_products, weights=weights)[0]
            day = (t - cfg.start_time_ms) // DAY_MS
            yield PriceVisit(t, pid, c.customer_id, c.segment.name, self.weekday(day), rng.random())

    def bought(self, visit: PriceVisit, multiplier: float) -> bool:
        """Whether the visitor buys at ``multiplier`` (the same visit gives the same answer every time)."""
        return visit.u < self.purchase_probability(visit.product_id, multiplier, visit.segment)

    def expected_revenue(self, product_id: str, multiplier: float, segment: str) -> float:
        """Expected revenue of one visit: price x P(buy)."""
        price = self.products[product_id].list_price * multiplier
        return price * self.purchase_probability(product_id, multiplier, segment)
