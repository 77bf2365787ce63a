"""The scoring side's event-time watermark shared through Redis, for a learner that scores nothing.

Every worker that scores publishes, every 2 s (its gauges timer), the event time each of its orders
partitions is scored through, in the hash ``<prefix>hanzo:scored-through`` (field
``"topic/partition"``). A ``role: learn`` worker consumes no orders, so it has no watermark of its
own: :class:`SharedWatermark` reads the hash and takes the lowest partition (a label waits for its
vector until every partition has passed its event time, as
:class:`streams.learner_service.LabelJoiner` expects of a watermark). It never goes back, though a
partition's new owner after a rebalance may publish a little less than the old one did.
"""

from __future__ import annotations

from typing import Any

KEY = "hanzo:scored-through"


def publish_scored_through(client: Any, key_prefix: str, marks: dict[str, int]) -> None:
    """Write the partitions' scored-through times (``"topic/partition"`` -> ms); nothing when empty."""
    if marks:
        client.hset(f"{key_prefix}{KEY}", mapping=marks)


class SharedWatermark:
    """The group's scoring watermark: the least scored-through time over every orders partition.

    A partition nobody has published yet holds it at 0 (labels wait). Calling it costs one ``HMGET``.

    Examples
    --------
    >>> class FakeRedis:  # what HMGET answers: one value per field, None where unset
    ...     def hmget(self, key, fields):
    ...         return [b"2000", b"1500"] if key == "p:hanzo:scored-through" else [None, None]
    >>> SharedWatermark(FakeRedis(), "p:", "orders", partitions=2)()
    1500
    >>> SharedWatermark(FakeRedis(), "q:", "orders", partitions=2)()
    0
    """

    def __init__(self, client: Any, key_prefix: str, orders_topic: str, partitions: int) -> None:
        self.client = client
        self.key = f"{key_prefix}{KEY}"
        self.fields = [f"{orders_topic}/{p}" for p in range(partitions)]
        self.last = 0

    def __call__(self) -> int:
        """The watermark now (ms): the least partition's time, never below what it said before."""
        values = self.client.hmget(self.key, self.fields)
        if values and all(v is not None for v in values):
            self.last = max(self.last, min(int(v) for v in values))
        return self.last
