"""The shop floor as events: the :class:`~streams.simulation.shop.ShopSimulator` streams on the wire.

They are orders and customer events, in the conventions of :mod:`learners.families.events`:

- **demand**: each product's daily units (``ShopSimulator.daily_units``) become orders of 1-3 units spread
  over the day, each placed by the likeliest of three random customers (by taste);
- **search**: a ``search`` event with the query and the products shown (ids, list prices, title words,
  category), then a ``click`` per click and an ``add_to_cart`` per purchase, each with ``session_id``;
- **shopping**: ``page_view`` and ``add_to_cart`` events with ``product_id``, and an order per purchase;
- **price experiment**: each visit is a ``page_view`` with the price multiplier shown (drawn uniformly from
  the price points: a randomised experiment), the list price, the visitor's segment and the category; a
  visitor who buys at that price orders the product two minutes later at list price x multiplier.

:func:`shop_events` yields them in event-time order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

from hanzo.ml.learners.families.events import search_properties
from hanzo.ml.schemas.events import CustomerEvent, Order, OrderItem
from hanzo.ml.streams.simulation.customers import DAY_MS, Customer
from hanzo.ml.streams.simulation.shop import ShopSimulator

logger = logging.getLogger(__name__)

__all__ = ["shop_events"]

ShopEvent = Order | CustomerEvent

_CURRENCY = "EUR"
_SECOND = 1000


def _order(shop: ShopSimulator, oid: str, c: Customer, t: int, pid: str, qty: int, price: float) -> Order:
    sp = shop.products[pid]
    return Order(
        order_id=oid,
        customer_id=c.customer_id,
        event_time=t,
        items=[OrderItem(product_id=pid, category=sp.category, quantity=qty, unit_price=price)],
        total=round(qty * price, 2),
        currency=_CURRENCY,
        payment_method=c.payment_method,  # type: ignore[arg-type]
        billing_country=c.country,
        shipping_country=c.country,
        channel=c.channel,  # type: ignore[arg-type]
        account_created_time=c.created_ms,
    )


def _event(eid: str, customer: str, t: int, kind: str, **fields: object) -> CustomerEvent:
    return CustomerEvent(event_id=eid, customer_id=customer, event_time=t, type=kind, **fields)  # type: ignore[arg-type]


def _demand(shop: ShopSimulator, rng: random.Random) -> Iterator[ShopEvent]:
    customers = list(shop.customers.values())
    for day, start, pid, units in shop.daily_units():
        j = 0
        while units > 0:
            qty = min(units, rng.choice((1, 1, 2, 3)))
            units -= qty
            c = max(
                rng.sample(customers, min(3, len(customers))), key=lambda c: shop.affinity(c.customer_id, pid)
            )
            t = start + int(rng.random() * (DAY_MS - 1))
            price = shop.products[pid].list_price
            yield _order(shop, f"{shop.prefix}-d{day:05d}-{pid}-{j}", c, t, pid, qty, price)
            j += 1


def _search(shop: ShopSimulator) -> Iterator[ShopEvent]:
    for s in shop.sessions():
        products = [shop.products[p] for p in s.shown]
        category = shop.query_category(s.query)
        props = search_properties(
            list(s.shown), [p.list_price for p in products], [p.tags for p in products], category
        )
        yield _event(s.session_id, s.customer_id, s.time_ms, "search", query=s.query, properties=props)
        for pos, pid in enumerate(s.shown):
            if pid in s.clicks:
                t = s.time_ms + (pos + 1) * 5 * _SECOND
                yield _event(
                    f"{s.session_id}-c{pos}",
                    s.customer_id,
                    t,
                    "click",
                    product_id=pid,
                    properties={"session_id": s.session_id},
                )
            if pid in s.purchases:
                t = s.time_ms + 120 * _SECOND + pos * _SECOND
                yield _event(
                    f"{s.session_id}-a{pos}",
                    s.customer_id,
                    t,
                    "add_to_cart",
                    product_id=pid,
                    properties={"session_id": s.session_id},
                )


def _shopping(shop: ShopSimulator) -> Iterator[ShopEvent]:
    for i, it in enumerate(shop.interactions()):
        eid = f"{shop.prefix}-i{i:08d}"
        if it.kind == "purchase":
            c = shop.customers[it.customer_id]
            price = shop.products[it.product_id].list_price
            yield _order(shop, eid, c, it.time_ms, it.product_id, 1, price)
        else:
            kind = "page_view" if it.kind == "view" else "add_to_cart"
            yield _event(eid, it.customer_id, it.time_ms, kind, product_id=it.product_id)


def _prices(shop: ShopSimulator, rng: random.Random) -> Iterator[ShopEvent]:
    points = shop.config.price_points
    for i, v in enumerate(shop.price_visits()):
        m = rng.choice(points)
        sp = shop.products[v.product_id]
        eid = f"{shop.prefix}-v{i:08d}"
        props: dict[str, str | float | int | bool] = {
            "price_multiplier": m,
            "list_price": sp.list_price,
            "segment": v.segment,
            "category": sp.category,
        }
        yield _event(eid, v.customer_id, v.time_ms, "page_view", product_id=v.product_id, properties=props)
        if shop.bought(v, m):
            c = shop.customers[v.customer_id]
            price = round(sp.list_price * m, 2)
            yield _order(shop, f"{eid}-o", c, v.time_ms + 120 * _SECOND, v.product_id, 1, price)


def shop_events(shop: ShopSimulator) -> list[ShopEvent]:
    """Every event of the shop floor (demand, search, shopping, prices), sorted by event time.

    Examples
    --------
    >>> from hanzo.ml.streams.simulation.shop import ShopSimulatorConfig
    >>> shop = ShopSimulator(ShopSimulatorConfig(seed=1, products=30, customers=20, days=3, sessions=4,
    ...                                          purchases=3, visits=5, demand_products=2))
    >>> events = shop_events(shop)
    >>> times = [e.event_time for e in events]
    >>> times == sorted(times), {e.kind for e in events} == {"order", "customer_event"}
    (True, True)
    """
    rng = random.Random(shop.config.seed * 7919 + 5)
    events: list[ShopEvent] = [
        *_demand(shop, rng),
        *_search(shop),
        *_shopping(shop),
        *_prices(shop, rng),
    ]
    events.sort(key=lambda e: e.event_time)
    logger.debug("shop floor: %d events", len(events))
    return events
