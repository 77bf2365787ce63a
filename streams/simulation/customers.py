"""Simulated customers: segments with their habits, the population, and how a customer is drawn."""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field

from hanzo.ml.streams.simulation.catalog import CATEGORIES
from hanzo.ml.streams.simulation.config import BGNBD

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000

#: Home countries of customers and their weights.
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("DE", 0.28),
    ("FR", 0.14),
    ("US", 0.13),
    ("GB", 0.11),
    ("NL", 0.07),
    ("ES", 0.07),
    ("IT", 0.07),
    ("PL", 0.05),
    ("AT", 0.04),
    ("SE", 0.04),
)
COUNTRY_CODES = tuple(c for c, _ in COUNTRIES)
#: Further shipping destinations (gifts, travel, drop addresses).
FOREIGN_DESTINATIONS = (*COUNTRY_CODES, "BE", "CH", "DK", "CZ", "PT", "IE", "LT", "RO", "CA", "AE")

#: How legitimate customers pay when they deviate from their habit.
PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("card", 0.50),
    ("paypal", 0.25),
    ("bank_transfer", 0.08),
    ("cod", 0.08),
    ("gift_card", 0.07),
    ("crypto", 0.02),
)
CHANNELS: tuple[tuple[str, float], ...] = (("web", 0.5), ("app", 0.35), ("marketplace", 0.1), ("phone", 0.05))


@dataclass(frozen=True, slots=True)
class Segment:
    """The habits of a group of customers.

    ``rate`` is the relative order frequency, ``basket`` the mean number of lines, ``price_factor`` > 1
    picks pricier products, ``discount`` the largest sale discount taken, ``categories`` the favourite
    categories (empty: any), ``payments`` the usual payment methods.
    """

    name: str
    share: float
    rate: float
    basket: float
    price_factor: float
    discount: float
    categories: tuple[str, ...]
    payments: tuple[str, ...]


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "frequent", 0.20, 4.0, 2.2, 1.0, 0.10, ("grocery", "beauty", "home", "fashion"), ("card", "paypal")
    ),
    Segment("occasional", 0.45, 0.7, 1.4, 1.0, 0.10, (), ("card", "paypal", "bank_transfer", "cod")),
    Segment(
        "big_spender", 0.10, 1.2, 1.8, 1.6, 0.05, ("electronics", "jewelry", "fashion", "home"), ("card",)
    ),
    Segment(
        "bargain_hunter",
        0.25,
        1.5,
        3.0,
        0.8,
        0.30,
        ("grocery", "books", "toys", "fashion"),
        ("paypal", "card"),
    ),
)


@dataclass(slots=True)
class Customer:
    """One account: its habits and running totals of its legitimate orders.

    ``activity`` is the relative purchase rate; with BG/NBD churn, ``dropout`` is the drop-out chance
    after an order (before complaints), ``complaints`` the ``(event_time, hazard)`` of the account's support
    tickets and refunds, and ``churn_ms`` the time of the order after which the customer dropped out.
    """

    customer_id: str
    segment: Segment
    country: str
    payment_method: str
    channel: str
    categories: tuple[str, ...]
    created_ms: int
    activity: float
    churn_ms: float = math.inf
    orders: int = 0
    spent: float = 0.0
    dropout: float = 0.0
    complaints: list[tuple[int, float]] = field(default_factory=list)

    @property
    def mean_order(self) -> float | None:
        """Mean total of the customer's legitimate orders so far (None before the first)."""
        return self.spent / self.orders if self.orders else None


def weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    """Draw a name from ``(name, weight)`` pairs."""
    x = rng.random() * sum(w for _, w in pairs)
    for name, w in pairs:
        x -= w
        if x < 0:
            return name
    return pairs[-1][0]


@dataclass
class Population:
    """The customers who order on their own, drawn in proportion to their activity.

    A customer who drops out is :meth:`retire`-d: never drawn again, and their activity leaves
    :attr:`weight` (the list is compacted when the retired hold half of the activity).

    Examples
    --------
    >>> import random
    >>> pop = Population()
    >>> rng = random.Random(3)
    >>> c = pop.new_customer(rng, "s3-c000000", created_ms=1_700_000_000_000)
    >>> pop.add(c)
    >>> pop.pick(rng, now_ms=1_700_000_000_000) is c
    True
    >>> c.churn_ms = 1_700_000_000_000
    >>> pop.retire(c)
    >>> pop.weight, pop.pick(rng, now_ms=1_700_000_000_000)
    (0.0, None)
    """

    customers: list[Customer] = field(default_factory=list)
    _cum: list[float] = field(default_factory=list)
    _retired: float = 0.0

    def new_customer(
        self, rng: random.Random, customer_id: str, created_ms: int, churn: BGNBD | None = None
    ) -> Customer:
        """Draw a customer's habits (not yet added to the population).

        Without ``churn`` the activity is the segment's rate times a log-normal factor; with it, the segment's
        rate times ``Gamma(churn.r, 1)`` and the drop-out chance is drawn from ``Beta(churn.a, churn.b)``.
        """
        x = rng.random()
        segment = SEGMENTS[-1]
        for seg in SEGMENTS:
            x -= seg.share
            if x < 0:
                segment = seg
                break
        pool = segment.categories
        if pool:
            categories = tuple(rng.sample(pool, k=rng.randint(2, len(pool))))
        else:
            categories = tuple(rng.sample([c.name for c in CATEGORIES], k=3))
        country = weighted(rng, COUNTRIES)
        payment = rng.choice(segment.payments)
        channel = weighted(rng, CHANNELS)
        if churn is None:
            activity, dropout = segment.rate * math.exp(rng.gauss(0.0, 0.5)), 0.0
        else:
            activity = segment.rate * rng.gammavariate(churn.r, 1.0)
            dropout = rng.betavariate(churn.a, churn.b)
        return Customer(
            customer_id=customer_id,
            segment=segment,
            country=country,
            payment_method=payment,
            channel=channel,
            categories=categories,
            created_ms=created_ms,
            activity=activity,
            dropout=dropout,
        )

    @property
    def weight(self) -> float:
        """The total activity of the customers not retired."""
        return max(0.0, self._cum[-1] - self._retired) if self._cum else 0.0

    def add(self, customer: Customer) -> None:
        """Let ``customer`` place orders from now on."""
        self.customers.append(customer)
        self._cum.append((self._cum[-1] if self._cum else 0.0) + customer.activity)

    def retire(self, customer: Customer) -> None:
        """Take a customer who dropped out (``churn_ms`` set) out of the draw for good."""
        self._retired += customer.activity
        if self._retired > 0.5 * self._cum[-1]:
            alive = [c for c in self.customers if math.isinf(c.churn_ms)]
            self.customers, self._cum, self._retired = [], [], 0.0
            for c in alive:
                self.add(c)

    def pick(self, rng: random.Random, now_ms: float, tries: int = 8) -> Customer | None:
        """Draw a customer not churned by ``now_ms``, by activity (None if ``tries`` draws all churned)."""
        cum = self._cum
        if not cum or cum[-1] <= 0:
            return None
        for _ in range(tries):
            c = self.customers[bisect_right(cum, rng.random() * cum[-1])]
            if c.churn_ms > now_ms:
                return c
        return None

    def pick_established(self, rng: random.Random, now_ms: float, min_age_ms: int) -> Customer | None:
        """Draw an active customer whose account is older than ``min_age_ms`` (a takeover victim)."""
        for _ in range(16):
            c = self.pick(rng, now_ms)
            if c is not None and now_ms - c.created_ms >= min_age_ms:
                return c
        return None
