"""How the shop's events carry what the model families learn from (the simulator writes them so).

Everything travels as the ordinary :class:`~streams.schemas.Order` and
:class:`~streams.schemas.CustomerEvent`:

- a search (a ranking session): a ``search`` event with ``query``; ``properties``: ``shown`` (the product ids
  in display order, space separated), ``prices`` (their list prices), ``titles`` (their title words, ``|``
  between products) and ``category``;
- a click on a search result: ``click`` with ``product_id``; ``session_id`` = the search's ``event_id``;
- a search result put in the cart (a purchase of the session): ``add_to_cart`` with ``product_id`` and
  ``session_id``;
- a product page view: ``page_view`` with ``product_id``;
- a price visit: ``page_view`` with ``product_id``; ``properties``: ``price_multiplier`` (shown),
  ``list_price``, ``segment``, ``category``;
- an add-to-cart: ``add_to_cart`` with ``product_id``;
- a purchase: an ``Order`` (its items: product, category, quantity, unit price).

Demand sums order items per product and day; recommendations learn from views, add-to-carts and order
items; pricing joins a price visit with the visitor's order of the product within
:data:`VISIT_WINDOW_MS`; ranking learns a search with its clicks and add-to-carts once
:data:`SESSION_WINDOW_MS` has passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hanzo.ml.learners.families.ranking import ProductInfo

logger = logging.getLogger(__name__)

__all__ = [
    "SESSION_WINDOW_MS",
    "VISIT_WINDOW_MS",
    "PriceVisitEvent",
    "SearchEvent",
    "price_visit",
    "search_event",
    "search_properties",
]

#: Clicks and add-to-carts of a search count within this long after it (event time).
SESSION_WINDOW_MS = 30 * 60_000
#: An order of the visited product within this long after a price visit earns the visit its reward.
VISIT_WINDOW_MS = 30 * 60_000


@dataclass(frozen=True, slots=True)
class SearchEvent:
    """A search as the ranker needs it: the query, the products shown and what it knows of them."""

    session_id: str
    query: str
    shown: tuple[str, ...]
    products: dict[str, ProductInfo]


@dataclass(frozen=True, slots=True)
class PriceVisitEvent:
    """A price visit: the product, the multiplier shown, the list price, the visitor's segment."""

    product_id: str
    multiplier: float
    list_price: float
    segment: str | None
    category: str | None


def search_properties(
    shown: list[str], prices: list[float], titles: list[frozenset[str]], category: str
) -> dict[str, str]:
    """The ``properties`` of a search event (see the module docstring).

    Examples
    --------
    >>> search_properties(["p1", "p2"], [9.5, 20.0], [frozenset({"cheap"}), frozenset()], "books")
    {'shown': 'p1 p2', 'prices': '9.5 20.0', 'titles': 'cheap|', 'category': 'books'}
    """
    return {
        "shown": " ".join(shown),
        "prices": " ".join(repr(float(p)) for p in prices),
        "titles": "|".join(" ".join(sorted(t)) for t in titles),
        "category": category,
    }


def search_event(event: Any) -> SearchEvent | None:
    """The search a ``search`` event describes, or ``None`` when it lacks the query or the shown products.

    Examples
    --------
    >>> from hanzo.ml.schemas.events import CustomerEvent
    >>> e = CustomerEvent(event_id="q1", customer_id="c1", event_time=1_767_225_600_000, type="search",
    ...                   query="books cheap", properties=search_properties(
    ...                       ["p1", "p2"], [9.5, 20.0], [frozenset({"cheap"}), frozenset()], "books"))
    >>> s = search_event(e)
    >>> s.shown, s.products["p1"].tags
    (('p1', 'p2'), frozenset({'cheap'}))
    """
    props = event.properties
    shown_text = props.get("shown")
    if not event.query or not isinstance(shown_text, str) or not shown_text:
        return None
    shown = tuple(shown_text.split())
    prices_text, titles_text, category = props.get("prices"), props.get("titles"), props.get("category")
    products: dict[str, ProductInfo] = {}
    if isinstance(prices_text, str) and isinstance(titles_text, str) and isinstance(category, str):
        prices, titles = prices_text.split(), titles_text.split("|")
        if len(prices) == len(shown) == len(titles):
            for pid, price, title in zip(shown, prices, titles, strict=True):
                products[pid] = ProductInfo(category, float(price), frozenset(title.split()))
    return SearchEvent(event.event_id, event.query, shown, products)


def price_visit(event: Any) -> PriceVisitEvent | None:
    """The price visit a ``page_view`` describes, or ``None`` for an ordinary page view."""
    props = event.properties
    m, price = props.get("price_multiplier"), props.get("list_price")
    if event.product_id is None or not isinstance(m, int | float) or not isinstance(price, int | float):
        return None
    if isinstance(m, bool) or price <= 0:
        return None
    segment, category = props.get("segment"), props.get("category")
    return PriceVisitEvent(
        event.product_id,
        float(m),
        float(price),
        segment if isinstance(segment, str) else None,
        category if isinstance(category, str) else None,
    )
