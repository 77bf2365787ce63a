"""Product-level features: orders repartitioned by product id, then applied to the ``product`` aggregates.

The orders topic is keyed by customer, so one worker sees a product's sales spread over every partition.
:func:`add_product_agent` adds two agents to a Faust app:

1. ``<orders>-explode-products`` reads the orders topic (``value_serializer="raw"``), parses each order with
   :func:`streams.schemas.parse_event` (invalid ones are skipped here; the hot path dead-letters them) and
   forwards the order's bytes once per distinct product id it contains, keyed by that product id, to the
   repartition topic ``<orders>-by-product-repartition``. This is what Faust's ``stream.group_by`` does,
   one message per key instead of one per event: ``group_by`` forwards each event once, so it cannot
   split an order that holds several products.
2. ``<orders>-product-features`` reads the repartition topic in batches (``stream.take_events``), keeps
   of each order only the lines of the message's product and calls ``store.apply_batch("product", ...)``
   with the repartition topic's offsets as fences. One worker owns each product's windows.

Re-delivery is harmless: the offset fence and the event-id mark (per product) make a second application a
no-op. ``product_views_24h`` (page views from the events topic) is not fed here.

The hanzo-ml worker does not use these agents: its order batch updates every product of its orders itself
(:meth:`streams.order_processor.OrderProcessor.apply_features`). They are for Faust apps of your own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.features import EventRecord, FeatureStore
from hanzo.ml.schemas.events import Order, parse_event

logger = logging.getLogger(__name__)


def product_ids(value: bytes) -> list[str]:
    """Distinct product ids of an order's lines, in order; ``[]`` for anything that is not a valid order.

    Examples
    --------
    >>> product_ids(b"not json")
    []
    """
    try:
        event = parse_event(value)
    except ValidationError:
        return []
    if not isinstance(event, Order):
        return []
    return event.product_ids


def product_record(
    key: bytes | None, value: bytes, topic: str, partition: int, offset: int
) -> EventRecord | None:
    """The order of a repartitioned message restricted to the lines of its product (the message key)."""
    try:
        event = parse_event(value)
    except ValidationError:
        return None
    if not isinstance(event, Order) or key is None:
        return None
    pid = key.decode()
    lines = [i for i in event.items if i.product_id == pid]
    if not lines:
        return None
    return EventRecord(event.model_copy(update={"items": lines}), topic, partition, offset)


def add_product_agent(
    app: faust.App,
    store: FeatureStore,
    orders_topic: str,
    *,
    repartition_topic: str | None = None,
    partitions: int | None = None,
    batch_size: int = 500,
    within_s: float = 0.5,
) -> tuple[Any, Any]:
    """Add the explode and product-feature agents to ``app``; returns them ``(explode, apply)``.

    Parameters
    ----------
    app
        The Faust app.
    store
        The feature store; its definitions must have ``product`` aggregates of source ``orders``.
    orders_topic
        Name of the orders topic (JSON orders, any key).
    repartition_topic
        Name of the topic keyed by product id (default ``<orders_topic>-by-product-repartition``).
    partitions
        Partitions of the repartition topic (default: the app's ``topic_partitions``).
    batch_size, within_s
        Batches of at most ``batch_size`` messages, waiting at most ``within_s`` seconds for one.
    """
    if "product" not in store.entities:
        msg = "add_product_agent: the feature definitions have no 'product' aggregate; define one first"
        raise ValidationError(msg)
    by_product = app.topic(
        repartition_topic or f"{orders_topic}-by-product-repartition",
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions or app.conf.topic_partitions,
        internal=True,
    )

    async def explode_orders(stream: Any) -> None:
        async for value in stream:
            for pid in product_ids(value):
                await by_product.send(key=pid.encode(), value=value)

    async def apply(stream: Any) -> None:
        async for events in stream.take_events(batch_size, within=within_s):
            records = []
            for event in events:
                m = event.message
                record = product_record(m.key, m.value, m.topic, m.partition, m.offset)
                if record is not None:
                    records.append(record)
            if records:
                # in a thread: a batch's Lua round trip must not stall the loop (order scoring shares it)
                results = await asyncio.to_thread(store.apply_batch, "product", records)
                logger.debug("product features: %d messages, %d results", len(records), len(results))

    source = app.topic(orders_topic, key_serializer="raw", value_serializer="raw")
    explode_agent = app.agent(source, name=f"{orders_topic}-explode-products")(explode_orders)
    apply_agent = app.agent(by_product, name=f"{orders_topic}-product-features")(apply)
    return explode_agent, apply_agent
