"""Detect a broker whose logs went backwards (restarted empty), and start a new broker epoch in Redis.

The embedded Tansu broker keeps its topics in memory: restarted, it comes back with empty topics and no
consumer-group offsets, and the new events get offsets 0, 1, 2... again. Redis still holds the offset fences
of the old logs (``P f:{entity:id}`` field ``@<topic>/<partition>``, the last offset applied, see
:mod:`features.redis_store`), so without a check every new event would be refused as already seen.

:class:`LogLedger` keeps one hash, ``P hanzo:log``, field ``<topic>/<partition>`` -> the next offset the
worker processed there (the largest, written after each batch and before its commit). When the consumer
(re)joins or the broker answers again after an outage, :func:`log_went_back` compares it with the broker:

- an end offset below the recorded one: the log is shorter than what was processed;
- after an outage only: no committed offset for a partition the ledger says was processed: the group's
  offsets were lost with the broker (a persistent broker keeps them, so its normal resume path never gets
  here). Not at a plain (re)join: a partition handed over by a rebalance may have a ledger entry newer
  than its first commit.

Then :meth:`LogLedger.new_epoch` deletes the fences of those topics from every entity hash (``SCAN`` of the
entity hashes, ``HDEL`` of the fence fields), empties the ledger and counts the epoch in ``P
hanzo:broker-epoch``; the consumer reads the new topics from the beginning. Event-id dedupe marks are kept,
so an event that was applied before and is read again is still a duplicate: starting an epoch when in
doubt never counts an event twice.

Limits: the ``SCAN`` touches every entity hash of the prefix once (a rare, restart-time cost).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LEDGER_KEY = "hanzo:log"
EPOCH_KEY = "hanzo:broker-epoch"

#: HSET each field to the larger of its value and the argument (the ledger only moves forward).
_RECORD_MAX = """
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""


@dataclass(frozen=True)
class BrokerHooks:
    """What the worker does when the broker fails, comes back, or comes back empty (all optional).

    ``error(op)`` counts a failed broker operation (``poll``, ``commit``, ``metadata``, ``offsets``);
    ``state(ok)`` reports reachability (health); ``recreate()`` creates the topics the worker needs
    (:func:`streams.topics.ensure_topics`); ``new_epoch()`` runs after a new broker epoch started (the
    learner rewinds its labels); ``back()`` runs when the broker answers again (the learner checks its
    offsets against the new log).
    """

    error: Callable[[str], None] | None = None
    state: Callable[[bool], None] | None = None
    recreate: Callable[[], Awaitable[None]] | None = None
    new_epoch: Callable[[], Awaitable[None]] | None = None
    back: Callable[[], Awaitable[None]] | None = None


def worker_hooks(hub: Any, metrics: Any, recreate: Callable[[], Awaitable[None]]) -> BrokerHooks:
    """The worker's :class:`BrokerHooks`: count errors, mark ``hub.kafka_ok``, rewind ``hub.learner``.

    ``metrics`` is a :class:`monitor.metrics.Metrics` (``hanzo_broker_errors_total{op}``); ``hub`` any
    object with a ``kafka_ok`` flag and a ``learner`` (a :class:`~streams.learner_service.LearnerService`
    or None).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> hub = SimpleNamespace(kafka_ok=True, learner=None)
    >>> async def recreate() -> None: ...
    >>> hooks = worker_hooks(hub, metrics=None, recreate=recreate)
    >>> hooks.state(False); hub.kafka_ok
    False
    """

    def error(op: str) -> None:
        if metrics is not None:
            metrics.broker_errors_total.labels(op=op).inc()

    def state(ok: bool) -> None:
        hub.kafka_ok = ok

    async def new_epoch() -> None:
        if hub.learner is not None:
            await hub.learner.check_log(force=True)

    async def back() -> None:
        if hub.learner is not None:
            await hub.learner.check_log()

    return BrokerHooks(error=error, state=state, recreate=recreate, new_epoch=new_epoch, back=back)


def tp_key(topic: str, partition: int) -> str:
    """The ledger field (and fence suffix) of a partition.

    Examples
    --------
    >>> tp_key("orders", 3)
    'orders/3'
    """
    return f"{topic}/{partition}"


def log_went_back(
    recorded: Mapping[str, int], ends: Mapping[str, int], committed: Mapping[str, int | None]
) -> list[str]:
    """Partitions whose broker log is behind what the worker processed (sorted ``topic/partition``).

    Parameters
    ----------
    recorded
        The ledger: next offset processed per partition.
    ends
        The broker's end offset per partition (a partition missing here is not judged).
    committed
        The group's committed offset per partition (None: none committed; missing: not asked).

    Examples
    --------
    >>> log_went_back({"o/0": 500, "o/1": 20}, {"o/0": 3, "o/1": 40}, {"o/0": None, "o/1": 20})
    ['o/0']
    >>> log_went_back({"o/0": 500}, {"o/0": 900}, {"o/0": None})  # the group's offsets are gone
    ['o/0']
    >>> log_went_back({"o/0": 500}, {"o/0": 900}, {"o/0": 480})  # a persistent broker: resume
    []
    """
    stale = []
    for key, done in recorded.items():
        if done <= 0 or key not in ends:
            continue
        if ends[key] < done or (key in committed and committed[key] is None):
            stale.append(key)
    return sorted(stale)


class LogLedger:
    """The offsets a worker processed per partition, in Redis, and the broker epochs of its fences.

    Parameters
    ----------
    redis_client
        A sync redis-py client.
    key_prefix
        Prefix of every Redis key of the deployment.
    partitions
        Partitions per topic whose fences :meth:`new_epoch` clears besides the recorded ones (fields of
        absent partitions cost nothing).

    Examples
    --------
    >>> ledger = LogLedger(redis_client=None, key_prefix="t1:", partitions=2)
    >>> ledger.key, ledger.epoch_key, ledger.fence_fields(["orders/1", "orders/0"])
    ('t1:hanzo:log', 't1:hanzo:broker-epoch', ['@orders/0', '@orders/1'])
    """

    def __init__(
        self,
        redis_client: Any,
        key_prefix: str = "",
        partitions: int = 4,
    ) -> None:
        self.redis_client = redis_client
        self.key_prefix = key_prefix
        self.partitions = partitions

    @property
    def key(self) -> str:
        """The ledger hash."""
        return f"{self.key_prefix}{LEDGER_KEY}"

    @property
    def epoch_key(self) -> str:
        """The broker-epoch counter."""
        return f"{self.key_prefix}{EPOCH_KEY}"

    def record(self, next_offsets: Mapping[str, int]) -> None:
        """Raise the recorded next offset of each partition to at least the given one (one script call)."""
        if not next_offsets:
            return
        args: list[Any] = []
        for key, offset in next_offsets.items():
            args += [key, int(offset)]
        self.redis_client.eval(_RECORD_MAX, 1, self.key, *args)

    def recorded(self) -> dict[str, int]:
        """The ledger: next offset processed per ``topic/partition``."""
        raw = self.redis_client.hgetall(self.key)
        return {_text(k): int(v) for k, v in raw.items()}

    def epoch(self) -> int:
        """The number of broker epochs started so far (0: the first broker)."""
        value = self.redis_client.get(self.epoch_key)
        return int(value) if value is not None else 0

    def fence_fields(self, keys: Iterable[str]) -> list[str]:
        """The fence fields of the given ``topic/partition`` keys, sorted, each once."""
        return sorted({f"@{k}" for k in keys})

    def new_epoch(self, topics: Iterable[str], batch: int = 1000) -> tuple[int, int]:
        """Start a new broker epoch: clear the fences of ``topics``' partitions, empty the ledger.

        The fences of every recorded or assumed partition of ``topics`` are deleted from
        every entity hash under the prefix; dedupe marks stay. Returns ``(epoch, hashes touched)``.
        """
        wanted = set(topics)
        recorded = self.recorded()
        keys = [k for k in recorded if k.rsplit("/", 1)[0] in wanted]
        keys += [tp_key(t, p) for t in wanted for p in range(self.partitions)]
        fields = self.fence_fields(keys)
        touched = 0
        pipe = self.redis_client.pipeline(transaction=False)
        pending = 0
        for name in self.redis_client.scan_iter(match=f"{self.key_prefix}f:{{*", count=batch, _type="hash"):
            pipe.hdel(name, *fields)
            pending += 1
            if pending >= batch:
                touched += sum(1 for n in pipe.execute() if n)
                pending = 0
        if pending:
            touched += sum(1 for n in pipe.execute() if n)
        self.redis_client.delete(self.key)
        epoch = int(self.redis_client.incr(self.epoch_key))
        logger.warning(
            "broker epoch %d: cleared the offset fences of %d partitions in %d entity hashes",
            epoch,
            len(fields),
            touched,
        )
        return epoch, touched


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
