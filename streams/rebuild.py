"""Detect a Redis that lost its data, so the worker can rebuild its state from Kafka.

Redis holds rebuildable state (feature buckets, offset fences, dedupe marks, scores and scored vectors);
the topics are the source of truth (ARCHITECTURE.md). A Redis restarted without persistence comes back
empty while the consumer group keeps its committed offsets, so without a check the worker would go on
from those offsets over empty state: every event before the loss would be missing from the features
and the labels of orders scored before it would find no vector.

:class:`EpochMarker` keeps one key, ``{prefix}hanzo:epoch``, holding a random id (no TTL). A worker adopts
the id it finds at its first check and compares on every later check; a missing id (written again,
``SET NX``) or a changed one (another worker noticed the loss first) means Redis lost its data. The
worker's :class:`~streams.batch_consumer.BatchConsumer` checks before each batch and, when the state is
lost, seeks its partitions back to the beginning and replays them through the same processor: the fences
and dedupe marks went with the data, so every event is applied exactly once again and the scored vectors
are rewritten. The learners' label offsets are left alone (their models live in the registry).

Guarantees and limits:

- a Redis found without the marker at the first check counts as lost, so a worker started after Redis
  was emptied while it was down also replays; on a fresh deployment that replay reads what the group
  would read anyway (``auto_offset_reset=earliest``);
- the rebuild is only as complete as the topics: their retention must cover the longest feature window
  (90 days), otherwise run ``hanzo-ml features backfill`` from a history file after the rebuild;
- a partition this worker did not own when it rewound is not replayed by it; a batch applied in the
  microseconds between the check and the loss writes fences that hide the earlier offsets of its
  entities from the replay.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from hanzo.ml.streams.order_processor import OrderProcessor

logger = logging.getLogger(__name__)

EPOCH_KEY = "hanzo:epoch"


class EpochMarker:
    """A marker key whose disappearance (or change) says Redis lost the worker's state.

    Parameters
    ----------
    redis_client
        A sync redis-py client (``decode_responses`` either way).
    key_prefix
        Prefix of every Redis key of the deployment.
    on_error
        Called with the exception when a check fails (the worker marks Redis as failing and counts it);
        the exception still propagates.

    Examples
    --------
    >>> marker = EpochMarker(redis_client=None, key_prefix="t1:")
    >>> marker.key, marker.epoch, marker.losses
    ('t1:hanzo:epoch', None, 0)
    """

    def __init__(
        self,
        redis_client: Any,
        key_prefix: str = "",
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.redis_client = redis_client
        self.key_prefix = key_prefix
        self.on_error = on_error
        self._reset()

    def _reset(self) -> None:
        self.epoch: str | None = None
        #: how many times the state was found lost and the marker renewed (a first start included)
        self.losses = 0

    @property
    def key(self) -> str:
        """The marker's Redis key."""
        return f"{self.key_prefix}{EPOCH_KEY}"

    def _read(self) -> str | None:
        value = self.redis_client.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def state_lost(self) -> bool:
        """Whether Redis lost its data: the marker is missing or not the one this worker adopted.

        One ``GET``; writes nothing (:meth:`renew` does, once the caller has rewound). At the first check
        an existing marker is adopted (a restart over kept data). Redis errors propagate.
        """
        try:
            current = self._read()
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(exc)
            raise
        if current is not None and current == self.epoch:
            return False
        if current is not None and self.epoch is None:
            self.epoch = current
            logger.info("redis state epoch %s adopted from %s", current, self.key)
            return False
        if current is None:
            logger.warning("no redis state epoch at %s: the state was lost (or never built)", self.key)
        else:
            logger.warning(
                "redis state epoch at %s changed (%s -> %s): redis lost its data",
                self.key,
                self.epoch,
                current,
            )
        return True

    def renew(self) -> None:
        """Write a new marker unless another worker already did (``SET NX``) and adopt the current one."""
        self.redis_client.set(self.key, uuid.uuid4().hex, nx=True)
        self.epoch = self._read()
        self.losses += 1
        logger.info("redis state epoch is now %s (rebuild %d)", self.epoch, self.losses)


def restart_replay(processor: OrderProcessor) -> None:
    """Reset what an :class:`~streams.order_processor.OrderProcessor` derived from the events so far.

    The replay starts again from the oldest events, so the event-time watermark starts again from zero:
    labels wait for their rewritten vectors instead of being given up against the old watermark, and
    derived labels and vector expiry follow the replay as they followed the first run.

    Examples
    --------
    >>> from hanzo.ml.features import FeatureStore, InMemoryOnlineStore
    >>> from hanzo.ml.learners.vectors import InMemoryVectorStore
    >>> processor = OrderProcessor(FeatureStore(backend=InMemoryOnlineStore()), None, [], kinds={},
    ...                            vectors=InMemoryVectorStore())
    >>> processor.watermark_ms = 1_767_225_600_000
    >>> restart_replay(processor)
    >>> processor.watermark_ms
    0
    """
    processor.reset_watermark()
