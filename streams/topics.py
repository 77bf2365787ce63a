"""Topic names and topic creation: the five logical topics and an idempotent ``ensure_topics``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings

logger = logging.getLogger(__name__)

#: The logical topics of the data flow, in the order they are documented.
LOGICAL_TOPICS = ("orders", "events", "labels", "scores", "dead-letters")


def topic_map(settings: Settings) -> dict[str, str]:
    """Map each logical topic (orders, events, labels, scores, dead-letters) to its configured name.

    Examples
    --------
    >>> topic_map(Settings(topic_orders="shop-orders"))["orders"]
    'shop-orders'
    >>> sorted(topic_map(Settings()))
    ['dead-letters', 'events', 'labels', 'orders', 'scores']
    """
    return {
        "orders": settings.topic_orders,
        "events": settings.topic_events,
        "labels": settings.topic_labels,
        "scores": settings.topic_scores,
        "dead-letters": settings.topic_dead_letters,
    }


def admin_client(
    bootstrap: str, timeout: float = 15.0, client_kwargs: Mapping[str, Any] | None = None
) -> AIOKafkaAdminClient:
    """An (unstarted) admin client for ``bootstrap`` with the TLS / SASL options of ``client_kwargs``.

    ``client_kwargs`` is :func:`streams.security.kafka_client_kwargs` of the deployment's settings.

    Examples
    --------
    >>> from hanzo.ml.streams.security import SecuritySettings, kafka_client_kwargs
    >>> tls = kafka_client_kwargs(SecuritySettings(kafka_security_protocol="SSL"))
    >>> async def protocol() -> str:  # aiokafka clients are made inside an event loop
    ...     return admin_client("127.0.0.1:9092", client_kwargs=tls)._client._security_protocol
    >>> asyncio.run(protocol())
    'SSL'
    """
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **dict(client_kwargs or {})
    )


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    timeout: float = 15.0,
    client_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Create every topic of ``topics`` (name -> partitions) that does not exist yet.

    Idempotent: topics that already exist are left as they are (a warning is logged when their
    partition count differs from the one asked for; partitions are never removed or added here).

    Parameters
    ----------
    bootstrap
        ``host:port`` of the broker.
    topics
        Topic name -> number of partitions.
    replication_factor
        Replicas per partition (1 for the embedded broker; raise it on a real cluster).
    timeout
        Seconds allowed for the whole operation.
    client_kwargs
        TLS / SASL options (:func:`streams.security.kafka_client_kwargs`); none: PLAINTEXT.

    Raises
    ------
    ServiceUnavailableError
        When no broker answers at ``bootstrap`` within ``timeout``.
    ConfigError
        When the broker refuses a topic (bad name, bad partition count).
    """
    for name, partitions in topics.items():
        if partitions < 1:
            msg = f"topic {name!r}: partitions must be >= 1, got {partitions}; fix HANZO_PARTITIONS"
            raise ConfigError(msg)
    if not topics:
        return
    admin = admin_client(bootstrap, timeout, client_kwargs)
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            await _create_missing(admin, topics, replication_factor, timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        msg = (
            f"could not create topics {sorted(topics)} on the Kafka broker at {bootstrap} within {timeout}s "
            f"({type(exc).__name__}: {exc}); start one with `hanzo-ml up` or fix HANZO_KAFKA_BOOTSTRAP"
        )
        raise ServiceUnavailableError(msg) from exc
    finally:
        await admin.close()


async def _create_missing(
    admin: AIOKafkaAdminClient, topics: Mapping[str, int], replication_factor: int, timeout: float
) -> None:
    existing = set(await admin.list_topics())
    present = [name for name in topics if name in existing]
    if present:
        await _warn_partition_mismatch(admin, {name: topics[name] for name in present})
    missing = [NewTopic(name, topics[name], replication_factor) for name in topics if name not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
    for topic, code, *rest in response.topic_errors:  # v0 has no error message
        error, message = for_code(code), rest[0] if rest else None
        if code == 0 or error is TopicAlreadyExistsError:  # another process created it meanwhile
            continue
        msg = (
            f"the broker refused topic {topic!r} ({error.__name__}: {message}); check its name and partitions"
        )
        raise ConfigError(msg)
    logger.info("created topics %s", ", ".join(f"{t.name}({t.num_partitions})" for t in missing))


async def _warn_partition_mismatch(admin: AIOKafkaAdminClient, wanted: Mapping[str, int]) -> None:
    for description in await admin.describe_topics(list(wanted)):
        name = description["topic"]
        have = len(description["partitions"])
        if have != wanted[name]:
            logger.warning(
                "topic %s exists with %d partitions (%d asked for); left unchanged", name, have, wanted[name]
            )
