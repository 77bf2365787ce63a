"""The simulated product catalogue: categories with lognormal prices, products with skewed popularity."""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Category:
    """A product category: its share of the catalogue and the lognormal law of its prices."""

    name: str
    share: float
    median_price: float
    sigma: float


#: The categories of the shop: (name, share of products and of casual demand, median price, log-sd).
CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 0.12, 120.0, 0.9),
    Category("fashion", 0.18, 40.0, 0.6),
    Category("home", 0.14, 35.0, 0.7),
    Category("books", 0.12, 14.0, 0.4),
    Category("beauty", 0.10, 18.0, 0.5),
    Category("sports", 0.08, 45.0, 0.7),
    Category("toys", 0.08, 22.0, 0.6),
    Category("grocery", 0.10, 6.0, 0.5),
    Category("jewelry", 0.04, 150.0, 0.9),
    Category("gift_cards", 0.04, 50.0, 0.5),
)

#: Categories that fraudsters favour (easy to resell).
RESALE_CATEGORIES = ("electronics", "jewelry", "gift_cards")


@dataclass(frozen=True, slots=True)
class Product:
    """One product: id, category and list price in the shop currency."""

    product_id: str
    category: str
    price: float


class Catalog:
    """Products per category with a Zipf-like popularity, drawn once from a seeded generator.

    Parameters
    ----------
    n_products
        Number of products (at least one per category).
    rng
        The generator that draws prices and popularity.
    prefix
        Prefix of the product ids.

    Examples
    --------
    >>> import random
    >>> cat = Catalog(50, random.Random(1), "s1")
    >>> len(cat.products), sorted(cat.by_category) == sorted(c.name for c in CATEGORIES)
    (50, True)
    >>> cat.pick(random.Random(2), "books").category
    'books'
    """

    def __init__(self, n_products: int, rng: random.Random, prefix: str) -> None:
        self.n_products = n_products
        self.prefix = prefix
        names = [c.name for c in CATEGORIES]
        assigned = names + rng.choices(
            names, weights=[c.share for c in CATEGORIES], k=n_products - len(names)
        )
        by_name = {c.name: c for c in CATEGORIES}
        self.products: list[Product] = []
        self.by_category: dict[str, list[Product]] = {name: [] for name in names}
        for i, name in enumerate(assigned):
            cat = by_name[name]
            price = round(cat.median_price * math.exp(rng.gauss(0.0, cat.sigma)), 2)
            product = Product(f"{prefix}-p{i:06d}", name, max(price, 0.5))
            self.products.append(product)
            self.by_category[name].append(product)
        # Popularity: Zipf(0.9) over a shuffled rank, so best sellers are spread over the price range.
        self._cum: dict[str, list[float]] = {}
        for name, items in self.by_category.items():
            ranks = list(range(1, len(items) + 1))
            rng.shuffle(ranks)
            self._cum[name] = list(accumulate(1.0 / r**0.9 for r in ranks))
        self.category_names = tuple(names)
        self._category_cum = list(accumulate(c.share for c in CATEGORIES))

    def pick_category(self, rng: random.Random) -> str:
        """Draw a category by its share of casual demand."""
        cum = self._category_cum
        return self.category_names[bisect_right(cum, rng.random() * cum[-1])]

    def pick(self, rng: random.Random, category: str) -> Product:
        """Draw a product of ``category`` by popularity."""
        cum = self._cum[category]
        return self.by_category[category][bisect_right(cum, rng.random() * cum[-1])]
