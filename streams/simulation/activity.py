"""What happens around an order: the browsing before it and the outcome after it (label, chargeback, ...)."""

from __future__ import annotations

import logging
import math
import random

from hanzo.ml.schemas.events import CustomerEvent, Label, Order, OrderItem
from hanzo.ml.streams.simulation.catalog import Catalog
from hanzo.ml.streams.simulation.customers import DAY_MS, Customer

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
#: Browsing starts at most this long before the order.
BROWSE_WINDOW_MS = 30 * MINUTE_MS
SEARCH_WORDS = ("deal", "new", "best", "cheap", "gift", "sale", "premium", "set", "kids", "pro")
SUPPORT_TICKET = {False: 0.03, True: 0.01}  # share of legit / fraud orders with a support ticket
REFUND_AFTER_TICKET = 0.4
REVIEW = 0.06


def poisson(rng: random.Random, mean: float) -> int:
    """Draw a Poisson count (Knuth's method: fine for the small means used here).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> round(sum(poisson(rng, 2.0) for _ in range(4000)) / 4000, 1)
    2.0
    """
    if mean <= 0:
        return 0
    limit, k, rand = math.exp(-mean), 0, rng.random
    p = rand()
    while p > limit:
        k += 1
        p *= rand()
    return k


def browsing(
    rng: random.Random, catalog: Catalog, c: Customer, oid: str, t: int, items: list[OrderItem], n: int
) -> list[CustomerEvent]:
    """Return ``n`` browsing events leading up to order ``oid`` at ``t``, in time order.

    Page views and searches in the customer's categories come first, then add-to-carts of the ordered
    products, and the last is ``checkout_started`` seconds to minutes before the order.
    """
    if n <= 0:
        return []
    rand, span, cid = rng.random, BROWSE_WINDOW_MS - 3 * MINUTE_MS, c.customer_id
    leads = sorted((3 * MINUTE_MS + int(rand() * span) for _ in range(n - 1)), reverse=True)
    carts = min(len(items), (len(leads) + 1) // 2)
    events = []
    for j, lead in enumerate(leads):
        query: str | None = None
        if j >= len(leads) - carts:
            etype, product = "add_to_cart", items[len(leads) - 1 - j].product_id
        elif rand() < 0.6:
            category = c.categories[int(rand() * len(c.categories))]
            etype, product = "page_view", catalog.pick(rng, category).product_id
        else:
            etype, product = "search", None
            query = f"{rng.choice(c.categories).replace('_', ' ')} {rng.choice(SEARCH_WORDS)}"
        events.append(
            CustomerEvent(
                event_id=f"{oid}-b{j}",
                customer_id=cid,
                event_time=t - lead,
                type=etype,
                product_id=product,
                query=query,
            )
        )
    checkout = t - 10_000 - int(rand() * (3 * MINUTE_MS - 10_000))
    events.append(
        CustomerEvent(
            event_id=f"{oid}-b{n - 1}", customer_id=cid, event_time=checkout, type="checkout_started"
        )
    )
    return events


def outcome(
    rng: random.Random, cid: str, oid: str, t: int, total: float, delay_days: tuple[float, float], fraud: bool
) -> list[Order | CustomerEvent | Label]:
    """Return what follows order ``oid``: its one ``fraud`` label (+ chargeback), tickets, refunds, reviews.

    The label comes ``uniform(*delay_days)`` days after ``t``; a fraudulent order's chargeback has the same
    event time as its label. The events are not in time order.
    """
    at = t + int(rng.uniform(*delay_days) * DAY_MS)
    events: list[Order | CustomerEvent | Label] = []
    if fraud:
        events.append(
            CustomerEvent(
                event_id=f"{oid}-chargeback",
                customer_id=cid,
                event_time=at,
                type="chargeback",
                order_id=oid,
                value=total,
            )
        )
    events.append(
        Label(
            label_id=f"{oid}-fraud",
            target="fraud",
            subject_id=oid,
            value=1.0 if fraud else 0.0,
            event_time=at,
        )
    )
    if rng.random() < SUPPORT_TICKET[fraud]:
        ticket = t + int(rng.uniform(0.5, 10) * DAY_MS)
        events.append(
            CustomerEvent(
                event_id=f"{oid}-ticket",
                customer_id=cid,
                event_time=ticket,
                type="support_ticket",
                order_id=oid,
            )
        )
        if not fraud and rng.random() < REFUND_AFTER_TICKET:
            refund = ticket + int(rng.uniform(1, 5) * DAY_MS)
            events.append(
                CustomerEvent(
                    event_id=f"{oid}-refund",
                    customer_id=cid,
                    event_time=refund,
                    type="refund",
                    order_id=oid,
                    value=round(total * rng.choice((0.25, 0.5, 1.0)), 2),
                )
            )
    if not fraud and rng.random() < REVIEW:
        review = t + int(rng.uniform(3, 20) * DAY_MS)
        events.append(
            CustomerEvent(
                event_id=f"{oid}-review",
                customer_id=cid,
                event_time=review,
                type="review",
                order_id=oid,
                value=float(rng.choice((1, 2, 3, 4, 4, 5, 5, 5))),
            )
        )
    return events
