"""The commerce stream generator: orders, browsing, follow-ups, delayed labels and fraud with ground truth."""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, OrderItem
from hanzo.ml.streams.simulation.activity import HOUR_MS, MINUTE_MS, browsing, outcome, poisson
from hanzo.ml.streams.simulation.catalog import RESALE_CATEGORIES, Catalog
from hanzo.ml.streams.simulation.config import SimulatorConfig
from hanzo.ml.streams.simulation.customers import (
    CHANNELS,
    DAY_MS,
    FOREIGN_DESTINATIONS,
    PAYMENT_METHODS,
    Customer,
    Population,
    weighted,
)

logger = logging.getLogger(__name__)

Event = Order | CustomerEvent | Label

#: The earliest an order's own events (browsing, a fake account's signup) come before the order.
MAX_LEAD_MS = 6 * HOUR_MS

FAKE_SHARE = 0.55  # of fraud episodes: fresh fake accounts; the rest are account takeovers
FAKE_BURST = (2, 2, 3, 3, 3, 4, 4, 5, 6)  # orders of a fake account's burst
ATO_BURST = (1, 1, 2, 2, 3)  # orders of an account takeover
CAREFUL_FAKE = 0.25  # fake accounts that place one ordinary-looking order
SUBTLE_ATO = 0.3  # takeovers that ship home and spend only a little more
REPEAT_ORDER = 0.05  # legit orders followed by a second one within the hour
FIRST_ORDER = 0.35  # new customers who order within hours of signing up
RISKY_PAYMENTS = ("gift_card", "gift_card", "crypto")

_ARRIVAL, _SIGNUP, _ORDER, _FRAUD = 0, 1, 2, 3


@dataclass(slots=True)
class _Episode:
    """How one fraudster behaves for the length of an attack."""

    kind: str  # "fake_account" or "account_takeover"
    ship_to: str
    payment: str
    channel: str
    categories: tuple[str, ...]
    spend: float  # target total as a multiple of the usual order (takeovers)
    careful: bool = False  # a fake account that orders like an ordinary customer


#: A scheduled order: who orders, and the fraud episode it belongs to (None: a legitimate order).
_Intent = tuple[Customer, _Episode | None] | None


@dataclass
class SimulationCounters:
    """What a simulation has yielded so far (``events`` counts every kind)."""

    orders: int = 0
    fraud_orders: int = 0
    fake_account_orders: int = 0
    account_takeover_orders: int = 0
    labels: int = 0
    customer_events: int = 0
    events: int = 0
    signups: int = 0
    fake_accounts: int = 0
    first_event_time: int | None = None
    last_event_time: int | None = None
    events_by_type: dict[str, int] = field(default_factory=dict)
    drift_applied: list[tuple[int, str]] = field(default_factory=list)

    @property
    def fraud_share(self) -> float:
        """Share of fraudulent orders among the orders yielded."""
        return self.fraud_orders / self.orders if self.orders else 0.0


class Simulator:
    """A seeded commerce stream with known ground truth.

    ``events()`` yields orders, customer events and labels in non-decreasing event time. Every order gets
    exactly one ``fraud`` label: ``1.0`` at its chargeback (fraud) or ``0.0`` when it settles (legit).
    Fraud comes from fresh fake accounts (bursts of expensive orders within an hour, risky payment, foreign
    shipping) and account takeovers (an established customer suddenly spends several times their usual
    amount, shipping elsewhere); some fraud looks ordinary and some legitimate orders look risky.

    Every call of ``events()`` starts again from the seed; iterate one ``events()`` at a time. Ground truth
    (:meth:`is_fraud`, :meth:`fraud_kind`, :meth:`churned_at`) and :attr:`counters` (what has been yielded
    so far) belong to the current iteration. Orders arrive as a Poisson process of ``orders_per_day`` in
    event time; all prices are in the one shop currency ``config.currency``.

    With ``config.churn`` (:class:`~streams.simulation.config.BGNBD`) every customer orders as a Poisson
    process of their own rate until they drop out after an order; fraud episodes still start at a fixed
    rate. Without it nobody churns.

    Parameters
    ----------
    config
        The stream's shape; the same config gives the same events, byte for byte.

    Examples
    --------
    >>> sim = Simulator(SimulatorConfig(seed=1, orders=50))
    >>> events = list(sim.events())
    >>> sum(e.kind == "order" for e in events), sum(e.kind == "label" for e in events)
    (50, 50)
    >>> all(a.event_time <= b.event_time for a, b in zip(events, events[1:]))
    True
    >>> orders = [e for e in events if e.kind == "order"]
    >>> sim.counters.fraud_orders == sum(sim.is_fraud(o.order_id) for o in orders)
    True
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._reset()

    def _reset(self) -> None:
        cfg = self.config
        self._rng = rng = random.Random(cfg.seed)
        self.catalog = Catalog(cfg.products, rng, cfg.prefix)
        self.counters = SimulationCounters()
        self._fraud: dict[str, str] = {}
        self._customers: dict[str, Customer] = {}
        self._population = Population()
        self._n_customers = 0
        self._n_orders = 0
        self._price_level = 1.0
        self._abroad = 0.05
        self._stealth = 0.0
        self._drift = sorted(cfg.drift, key=lambda d: d.at_order)
        self._out: list[tuple[int, int, Event]] = []
        self._intents: list[tuple[int, int, int, _Intent]] = []
        self._seq = count()
        start = cfg.start_time_ms
        for _ in range(cfg.customers):
            age = DAY_MS + min(rng.expovariate(1.0 / 365), 5 * 365) * DAY_MS
            self._add_customer(int(start - age))
        # Arrival rates: solve for the organic arrival rate and the share of arrivals that start fraud.
        fake_orders = CAREFUL_FAKE + (1 - CAREFUL_FAKE) * sum(FAKE_BURST) / len(FAKE_BURST)
        per_episode = FAKE_SHARE * fake_orders + (1 - FAKE_SHARE) * sum(ATO_BURST) / len(ATO_BURST)
        chain = 1 / (1 - REPEAT_ORDER)
        legit = (1 - cfg.fraud_rate) * cfg.orders_per_day - cfg.signups_per_day * FIRST_ORDER * chain
        if legit <= 0:
            msg = (
                f"signups_per_day={cfg.signups_per_day} brings more first orders than orders_per_day="
                f"{cfg.orders_per_day} allows; lower signups_per_day or raise orders_per_day"
            )
            raise ConfigError(msg)
        episodes = cfg.fraud_rate * cfg.orders_per_day / per_episode
        arrivals = legit / chain + episodes
        self._fraud_start = episodes / arrivals
        self._arrival_rate = arrivals / DAY_MS
        self._signup_rate = cfg.signups_per_day / DAY_MS
        # BG/NBD: legitimate arrivals per ms per unit of living activity (the paper's scale alpha), so that
        # the customers of the start place the legitimate orders of orders_per_day; fraud on its own clock.
        self._per_activity = legit / chain / DAY_MS / max(self._population.weight, 1e-12)
        self._episode_rate = episodes / DAY_MS
        self._next_legit: float | None = None
        # BG/NBD: no orders past the span the config was validated for (a customer base dying out)
        span = cfg.orders / cfg.orders_per_day + max(cfg.chargeback_delay_days[1], cfg.settle_delay_days[1])
        self._stop_ms = start + 2 * span * DAY_MS if cfg.churn is not None else math.inf

    # ------------------------------------------------------------------ ground truth

    def is_fraud(self, order_id: str) -> bool:
        """Whether the order was fraudulent (False for legitimate and for unknown ids)."""
        return order_id in self._fraud

    def fraud_kind(self, order_id: str) -> str | None:
        """``fake_account``, ``account_takeover`` or None (legitimate or unknown)."""
        return self._fraud.get(order_id)

    def churned_at(self, customer_id: str) -> int | None:
        """Event time of the customer's last legitimate order, after which they dropped out (None: never)."""
        c = self._customers.get(customer_id)
        return None if c is None or math.isinf(c.churn_ms) else int(c.churn_ms)

    def dropout(self, customer_id: str) -> float | None:
        """The customer's BG/NBD drop-out chance per order before complaints (None: unknown id, no churn)."""
        c = self._customers.get(customer_id)
        return None if c is None or self.config.churn is None else c.dropout

    # ------------------------------------------------------------------ the stream

    def events(self) -> Iterator[Event]:
        """Yield the whole stream in non-decreasing event time (restarts from the seed on every call)."""
        self._reset()
        cfg, rng, intents, out = self.config, self._rng, self._intents, self._out
        pop, push = heapq.heappop, heapq.heappush
        start = cfg.start_time_ms
        churn = cfg.churn is not None
        if churn:
            self._schedule_legit(start)
            if self._episode_rate > 0:
                push(
                    intents, (int(start + rng.expovariate(self._episode_rate)), next(self._seq), _FRAUD, None)
                )
            next_arrival = math.inf
        else:
            next_arrival = start + rng.expovariate(self._arrival_rate)
            push(intents, (int(next_arrival), next(self._seq), _ARRIVAL, None))
        if self._signup_rate > 0:
            push(intents, (int(start + rng.expovariate(self._signup_rate)), next(self._seq), _SIGNUP, None))
        while self._n_orders < cfg.orders and intents:
            t, _, kind, payload = pop(intents)
            if t > self._stop_ms:
                logger.warning("the customer base ordered too slowly: stopped at %d orders", self._n_orders)
                break
            horizon = t - MAX_LEAD_MS
            while out and out[0][0] <= horizon:
                yield self._count(pop(out)[2])
            if churn and kind == _ARRIVAL:
                self._next_legit = None
                self._schedule_legit(t)
                customer = self._population.pick(rng, t)
                if customer is not None:
                    self._order(t, customer, None)
            elif kind == _FRAUD:
                push(intents, (int(t + rng.expovariate(self._episode_rate)), next(self._seq), _FRAUD, None))
                self._start_fraud(t)
            elif kind == _ARRIVAL:
                next_arrival += rng.expovariate(self._arrival_rate)
                push(intents, (int(next_arrival), next(self._seq), _ARRIVAL, None))
                if rng.random() < self._fraud_start:
                    self._start_fraud(t)
                else:
                    customer = self._population.pick(rng, t)
                    if customer is not None:
                        self._order(t, customer, None)
            elif kind == _SIGNUP:
                push(intents, (int(t + rng.expovariate(self._signup_rate)), next(self._seq), _SIGNUP, None))
                customer = self._add_customer(t)
                self.counters.signups += 1
                self._signup(customer)
                if churn and self._next_legit is None:
                    self._schedule_legit(t)
                if rng.random() < FIRST_ORDER:
                    later = t + rng.randint(5 * MINUTE_MS, 4 * HOUR_MS)
                    push(intents, (later, next(self._seq), _ORDER, (customer, None)))
            elif payload is not None and (payload[1] is not None or payload[0].churn_ms > t):
                self._order(t, payload[0], payload[1])
        while out:
            yield self._count(pop(out)[2])

    def _count(self, event: Event) -> Event:
        c = self.counters
        c.events += 1
        c.last_event_time = event.event_time
        if c.first_event_time is None:
            c.first_event_time = event.event_time
        if isinstance(event, CustomerEvent):
            c.customer_events += 1
            c.events_by_type[event.type] = c.events_by_type.get(event.type, 0) + 1
        elif isinstance(event, Label):
            c.labels += 1
        else:
            c.orders += 1
            fraud = self._fraud.get(event.order_id)
            if fraud is not None:
                c.fraud_orders += 1
                if fraud == "fake_account":
                    c.fake_account_orders += 1
                else:
                    c.account_takeover_orders += 1
        return event

    def _emit(self, t: int, event: Event) -> None:
        heapq.heappush(self._out, (t, next(self._seq), event))

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            heapq.heappush(self._out, (event.event_time, next(self._seq), event))

    def _schedule_legit(self, t: int) -> None:
        """BG/NBD: schedule the next legitimate arrival at the living customers' total rate (none if 0)."""
        rate = self._per_activity * self._population.weight
        if rate > 0:
            self._next_legit = t + self._rng.expovariate(rate)
            heapq.heappush(self._intents, (int(self._next_legit), next(self._seq), _ARRIVAL, None))

    def _drops_out(self, c: Customer, t: int) -> bool:
        """BG/NBD: whether the customer drops out after their order at ``t`` (complaints raise the chance)."""
        hazard = sum(h for at, h in c.complaints if at <= t)
        p = c.dropout if hazard == 0 else 1 - (1 - c.dropout) * math.exp(-hazard)
        return self._rng.random() < p

    def _outcome(self, c: Customer, events: list[Event]) -> None:
        """Emit an order's follow-ups; with churn, note its support ticket and refund on the account."""
        churn = self.config.churn
        if churn is not None:
            for e in events:
                if isinstance(e, CustomerEvent):
                    if e.type == "support_ticket":
                        c.complaints.append((e.event_time, churn.ticket_uplift))
                    elif e.type == "refund":
                        c.complaints.append((e.event_time, churn.refund_uplift))
        self._emit_all(events)

    def _add_customer(self, created: int, legit: bool = True) -> Customer:
        cid = f"{self.config.prefix}-c{self._n_customers:07d}"
        self._n_customers += 1
        c = self._population.new_customer(self._rng, cid, created, self.config.churn)
        self._customers[cid] = c
        if legit:
            self._population.add(c)
        return c

    def _signup(self, c: Customer) -> None:
        props: dict[str, str | float | int | bool] = {"country": c.country, "channel": c.channel}
        event = CustomerEvent(
            event_id=f"{c.customer_id}-signup",
            customer_id=c.customer_id,
            event_time=c.created_ms,
            type="signup",
            properties=props,
        )
        self._emit(c.created_ms, event)

    # ------------------------------------------------------------------ fraud

    def _start_fraud(self, t: int) -> None:
        rng = self._rng
        stealth = rng.random() < self._stealth
        if rng.random() < FAKE_SHARE:
            lead = min(5 * MINUTE_MS + int(rng.expovariate(1 / 60) * MINUTE_MS), MAX_LEAD_MS)
            c = self._add_customer(t - lead, legit=False)
            c.channel = weighted(rng, (("web", 0.5), ("app", 0.3), ("marketplace", 0.2)))
            self.counters.fake_accounts += 1
            self._signup(c)
            careful = rng.random() < CAREFUL_FAKE
            if careful:
                episode = _Episode("fake_account", c.country, "card", c.channel, c.categories, 1.0, True)
                burst = 1
            else:
                ship = self._abroad_from(c.country) if rng.random() < 0.75 else c.country
                pay = (
                    rng.choice(RISKY_PAYMENTS)
                    if rng.random() < 0.6
                    else rng.choice(("card", "card", "paypal"))
                )
                episode = _Episode("fake_account", ship, pay, c.channel, RESALE_CATEGORIES, 1.0)
                burst = rng.choice(FAKE_BURST)
            offsets = sorted(rng.randint(2 * MINUTE_MS, HOUR_MS) for _ in range(burst - 1))
        else:
            victim = self._population.pick_established(rng, t, 30 * DAY_MS)
            if victim is None:
                return
            c = victim
            if rng.random() < SUBTLE_ATO:
                episode = _Episode(
                    "account_takeover", c.country, c.payment_method, c.channel, c.categories, 2.0
                )
            else:
                ship = self._abroad_from(c.country) if rng.random() < 0.8 else c.country
                pay = c.payment_method if rng.random() < 0.5 else rng.choice((*RISKY_PAYMENTS, "paypal"))
                channel = c.channel if rng.random() < 0.5 else weighted(rng, CHANNELS)
                episode = _Episode(
                    "account_takeover", ship, pay, channel, RESALE_CATEGORIES, rng.uniform(3, 8)
                )
            burst = rng.choice(ATO_BURST)
            offsets = sorted(rng.randint(5 * MINUTE_MS, 3 * HOUR_MS) for _ in range(burst - 1))
        if stealth:  # after a concept change: ordinary payment and address, gift cards via the marketplace
            episode.ship_to, episode.payment, episode.channel = c.country, "card", "marketplace"
            episode.categories = ("gift_cards",)
        self._order(t, c, episode)
        for off in offsets:
            heapq.heappush(self._intents, (t + off, next(self._seq), _ORDER, (c, episode)))

    def _abroad_from(self, country: str) -> str:
        while True:
            dest = self._rng.choice(FOREIGN_DESTINATIONS)
            if dest != country:
                return dest

    # ------------------------------------------------------------------ orders

    def _apply_drift(self, index: int) -> None:
        while self._drift and self._drift[0].at_order <= index:
            spec = self._drift.pop(0)
            if spec.kind == "feature_shift":
                self._price_level *= 1 + 0.5 * spec.magnitude
                self._abroad = min(0.5, self._abroad + 0.1 * spec.magnitude)
            else:
                self._stealth = min(1.0, spec.magnitude)
            self.counters.drift_applied.append((index, spec.kind))
            logger.info("drift %s (magnitude %s) from order %d", spec.kind, spec.magnitude, index)

    def _order(self, t: int, c: Customer, episode: _Episode | None) -> None:
        rng, cfg = self._rng, self.config
        index = self._n_orders
        self._n_orders += 1
        if self._drift:
            self._apply_drift(index)
        oid = f"{cfg.prefix}-o{index:08d}"
        seg = c.segment
        if episode is None:
            splurge = rng.random() < 0.03
            lines = 1 + poisson(rng, seg.basket - 1 + (2 if splurge else 0))
            items, total = self._basket(
                lines, c.categories, seg.price_factor * (2 if splurge else 1), seg.discount
            )
            payment = c.payment_method if rng.random() < 0.88 else weighted(rng, PAYMENT_METHODS)
            channel = c.channel if rng.random() < 0.9 else weighted(rng, CHANNELS)
            ship = self._abroad_from(c.country) if rng.random() < self._abroad else c.country
            browse = cfg.browse_events_per_order
        elif episode.kind == "account_takeover":
            usual = c.mean_order or 60.0 * seg.basket * seg.price_factor
            items, total = self._basket(1, episode.categories, 1.5, 0.0)
            while total < usual * episode.spend and len(items) < 8:
                more, extra = self._basket(1, episode.categories, 1.5, 0.0)
                items += more
                total = round(total + extra, 2)
            payment, channel, ship = episode.payment, episode.channel, episode.ship_to
            browse = cfg.browse_events_per_order * 0.5
        else:
            careful = episode.careful
            lines = 1 + poisson(rng, 0.5 if careful else 1.5)
            items, total = self._basket(lines, episode.categories, 1.0 if careful else 1.6, 0.0, max_qty=3)
            payment, channel, ship = episode.payment, episode.channel, episode.ship_to
            browse = cfg.browse_events_per_order * 0.3
        order = Order(
            order_id=oid,
            customer_id=c.customer_id,
            event_time=t,
            items=items,
            total=total,
            currency=cfg.currency,
            payment_method=payment,
            billing_country=c.country,
            shipping_country=ship,
            channel=channel,
            account_created_time=c.created_ms,
        )
        if browse > 0:
            for event in browsing(rng, self.catalog, c, oid, t, items, poisson(rng, browse)):
                self._emit(event.event_time, event)
        self._emit(t, order)
        if episode is None:
            c.orders += 1
            c.spent += total
            if cfg.churn is not None and self._drops_out(c, t):  # BG/NBD: gone after this order
                c.churn_ms = t
                self._population.retire(c)
            elif rng.random() < REPEAT_ORDER:  # forgot something: a second order within the hour
                later = t + 5 * MINUTE_MS + int(rng.random() * 50 * MINUTE_MS)
                heapq.heappush(self._intents, (later, next(self._seq), _ORDER, (c, None)))
            self._outcome(c, outcome(rng, c.customer_id, oid, t, total, cfg.settle_delay_days, fraud=False))
        else:
            self._fraud[oid] = episode.kind
            follow = outcome(rng, c.customer_id, oid, t, total, cfg.chargeback_delay_days, fraud=True)
            self._outcome(c, follow)

    def _basket(
        self, lines: int, categories: tuple[str, ...], price_factor: float, discount: float, max_qty: int = 2
    ) -> tuple[list[OrderItem], float]:
        rng, catalog = self._rng, self.catalog
        items: list[OrderItem] = []
        total = 0.0
        for _ in range(lines):
            x = rng.random()
            category = categories[int(x * 1.25 * len(categories))] if x < 0.8 else catalog.pick_category(rng)
            product = catalog.pick(rng, category)
            if price_factor > 1.2 or price_factor < 0.9:
                other = catalog.pick(rng, category)
                if (other.price > product.price) == (price_factor > 1):
                    product = other
            price = product.price * self._price_level
            if discount and rng.random() < 0.3:
                price *= 1 - rng.random() * discount
            price = round(price, 2)
            x = rng.random()
            qty = 1 if x < 0.8 else 2 if x < 0.95 or max_qty < 3 else max_qty
            if price_factor > 1.5 and rng.random() < 0.3:
                qty += 1
            items.append(
                OrderItem(product_id=product.product_id, category=category, quantity=qty, unit_price=price)
            )
            total += qty * price
        return items, round(total, 2)
