"""Send a stream of events to Kafka: keyed by entity, acknowledged by all replicas, optionally paced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, to_json
from hanzo.ml.streams.topics import ensure_topics

logger = logging.getLogger(__name__)

Event = Order | CustomerEvent | Label
KINDS = ("order", "customer_event", "label")


@dataclass(frozen=True)
class ProduceStats:
    """What :func:`produce` sent: events per kind, wall time and the event-time span.

    Examples
    --------
    >>> s = ProduceStats(events=10, by_kind={"order": 4, "label": 6}, wall_seconds=2.0)
    >>> s.orders, s.events_per_second
    (4, 5.0)
    """

    events: int
    by_kind: Mapping[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    first_event_time: int | None = None
    last_event_time: int | None = None

    @property
    def orders(self) -> int:
        """Orders among the events."""
        return int(self.by_kind.get("order", 0))

    @property
    def events_per_second(self) -> float:
        """Events acknowledged per second of wall-clock time."""
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0


def event_key(event: Event) -> bytes:
    """Return the Kafka key of an event: the customer for orders and customer events, the subject for labels.

    Examples
    --------
    >>> from hanzo.ml.schemas.events import Label
    >>> event_key(Label(label_id="l1", target="fraud", subject_id="o9", value=1.0,
    ...                 event_time=1_767_225_600_000))
    b'o9'
    """
    if isinstance(event, Label):
        return event.subject_id.encode()
    return event.customer_id.encode()


class _TokenBucket:
    """Paces sends to ``rate`` per second of wall-clock time, with bursts of at most ~50 ms of events."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 0.05)
        self.tokens = 0.0
        self.last = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            await asyncio.sleep((1.0 - self.tokens) / self.rate)
            now = time.monotonic()
            self.tokens += (now - self.last) * self.rate
            self.last = now
        self.tokens -= 1.0


def make_producer(bootstrap: str, client_kwargs: Mapping[str, Any] | None = None) -> AIOKafkaProducer:
    """The (unstarted) producer :func:`produce` uses, with the TLS / SASL options of ``client_kwargs``.

    ``acks="all"``, ``linger_ms=5``, no idempotence (the embedded broker does not support it).
    ``client_kwargs`` is :func:`streams.security.kafka_client_kwargs` of the deployment's settings.
    Create it inside a running event loop (aiokafka requires one).
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        max_batch_size=65536,
        **dict(client_kwargs or {}),
    )


async def produce(
    events: Iterable[Event],
    bootstrap: str,
    topics: Mapping[str, str],
    rate: float | None = None,
    on_progress: Callable[[ProduceStats], None] | None = None,
    *,
    partitions: int | None = 4,
    chunk: int = 2000,
    client_kwargs: Mapping[str, Any] | None = None,
) -> ProduceStats:
    """Send ``events`` to Kafka in order and wait until every one is acknowledged.

    Each event goes to ``topics[event.kind]`` as the JSON of :func:`streams.schemas.to_json`, keyed by
    :func:`event_key` (so one partition holds all of an entity's events, in order). The producer uses
    ``acks="all"`` and ``linger_ms=5``; idempotence stays off (the embedded Tansu broker does not support
    it). Kafka timestamps are the wall-clock send time (event time is in the payload), so the broker's
    time-based retention does not delete simulated history that lies in the past.

    Parameters
    ----------
    events
        The events, e.g. ``Simulator(config).events()``.
    bootstrap
        ``host:port`` of the broker.
    topics
        Kind (``order``, ``customer_event``, ``label``) -> topic name; every kind sent must be mapped.
    rate
        Events per second of wall-clock time (token bucket); None sends as fast as the broker acknowledges.
    on_progress
        Called with the :class:`ProduceStats` of the events acknowledged so far, after every ``chunk``
        events and once at the end.
    partitions
        Create missing topics with this many partitions (existing ones are left alone); None: the topics
        must exist.
    chunk
        Sends are not awaited one by one; acknowledgements are awaited every ``chunk`` events.
    client_kwargs
        TLS / SASL options of the producer and topic admin
        (:func:`streams.security.kafka_client_kwargs`).

    Raises
    ------
    ConfigError
        When a kind has no topic or ``rate`` is not positive.
    ServiceUnavailableError
        When no broker answers at ``bootstrap`` or a send fails.
    """
    missing = [k for k in KINDS if k not in topics]
    if missing:
        msg = f"no topic for event kind(s) {missing}; pass topics={{kind: topic}} for {list(KINDS)}"
        raise ConfigError(msg)
    if rate is not None and rate <= 0:
        msg = f"rate must be > 0 events/s (or None for as fast as possible), got {rate}"
        raise ConfigError(msg)
    if partitions is not None:
        await ensure_topics(bootstrap, {topics[k]: partitions for k in KINDS}, client_kwargs=client_kwargs)
    producer = make_producer(bootstrap, client_kwargs)
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        msg = (
            f"no Kafka broker answered at {bootstrap} ({exc}); run `hanzo-ml up` or set HANZO_KAFKA_BOOTSTRAP"
        )
        raise ServiceUnavailableError(msg) from exc
    bucket = _TokenBucket(rate) if rate else None
    by_kind = dict.fromkeys(KINDS, 0)
    first: int | None = None
    last: int | None = None
    sent = acked = 0
    pending: list[asyncio.Future[object]] = []
    started = time.monotonic()
    try:
        for event in events:
            if bucket is not None:
                await bucket.take()
            kind = event.kind
            pending.append(await producer.send(topics[kind], value=to_json(event), key=event_key(event)))
            by_kind[kind] += 1
            sent += 1
            if first is None:
                first = event.event_time
            last = event.event_time
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                acked, pending = sent, []
                if on_progress is not None:
                    on_progress(ProduceStats(acked, dict(by_kind), time.monotonic() - started, first, last))
        await asyncio.gather(*pending)
        await producer.flush()
    except KafkaError as exc:
        msg = f"sending to the Kafka broker at {bootstrap} failed after {acked} acknowledged events ({exc})"
        raise ServiceUnavailableError(msg) from exc
    finally:
        await producer.stop()
        for fut in pending:  # retrieve failures so none is reported as "never retrieved"
            if fut.done() and not fut.cancelled():
                fut.exception()
    stats = ProduceStats(
        sent, {k: v for k, v in by_kind.items() if v}, time.monotonic() - started, first, last
    )
    if on_progress is not None:
        on_progress(stats)
    logger.info("produced %d events in %.1fs", sent, stats.wall_seconds)
    return stats
