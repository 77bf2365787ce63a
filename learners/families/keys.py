"""The Redis keys the model families write, and the one helper that writes them.

| family | key | value |
|---|---|---|
| demand forecasting | ``{prefix}forecast:{product}`` | JSON list: expected units on each of the next H days |
| recommendations | ``{prefix}reco:{customer}`` | JSON list: the top k product ids, best first |
| price optimization | ``{prefix}price:{product}`` | JSON object: ``price``, ``multiplier``, ``by_segment`` |
| search ranking | ``{prefix}rank:{query}`` | JSON list: product ids, best first |

Every value is written with a TTL; a shop reads it with one ``GET``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.schemas import wire_json

logger = logging.getLogger(__name__)

__all__ = ["family_key", "write_json"]

KINDS = ("forecast", "reco", "price", "rank")


def family_key(kind: str, subject: str, prefix: str = "") -> str:
    """The Redis key of ``subject``'s output for a family ``kind``.

    Examples
    --------
    >>> family_key("forecast", "p1", prefix="shop1:")
    'shop1:forecast:p1'
    """
    if kind not in KINDS:
        msg = f"unknown family key kind {kind!r}; known: {', '.join(KINDS)}"
        raise ConfigError(msg)
    return f"{prefix}{kind}:{subject}"


def write_json(client: Any, items: Iterable[tuple[str, Any]], ttl_s: int, batch: int = 1000) -> int:
    """Write ``(key, value)`` pairs as JSON with ``ttl_s``, pipelined by ``batch``; return how many.

    ``client`` is a sync ``redis.Redis``. Raises :class:`~config.errors.ServiceUnavailableError` naming
    the first key when Redis cannot be reached.
    """
    n = 0
    pipe = client.pipeline(transaction=False)
    first: str | None = None
    try:
        for key, value in items:
            first = first or key
            pipe.set(key, wire_json.dumps(value), ex=ttl_s)
            n += 1
            if n % batch == 0:
                pipe.execute()
        pipe.execute()
    except redis.RedisError as exc:
        msg = f"cannot write family outputs to Redis (first key {first!r}): {exc}; check that Redis is up"
        raise ServiceUnavailableError(msg) from exc
    logger.debug("wrote %d family keys", n)
    return n
