"""Derived labels in event time: ``no_order_within_horizon`` (e.g. ``churned_90d``).

Reference points. Every order is a reference point for its customer: the customer-level model scores the
customer at that order and its vector is stored under the subject ``"{customer_id}:{order_event_time_ms}"``
(:func:`reference_subject`). The label of that reference is

- ``0`` as soon as the customer's next order arrives with an event time before ``reference + horizon``
  (the label's event time is that order's), and
- ``1`` when the event-time watermark (the largest event time the scorer has seen) reaches
  ``reference + horizon`` with no such order (the label's event time is ``reference + horizon``).

So a customer has at most one open reference: each order closes the previous one and opens its own. An order
older than the customer's open reference (out of order) is not a reference point; re-delivering the order
that opened the reference changes nothing. Nothing here reads the wall clock.

The open references wait in a deadline queue ordered by due time: :class:`InMemoryDeadlineQueue` for
``hanzo-ml train`` and :class:`RedisDeadlineQueue` for the worker (a sorted set ``{prefix}dl:{model}`` of
subject -> due time and a hash ``{prefix}dl:{model}:open`` of customer -> open subject, updated by one Lua
script per batch, so deadlines survive restarts). :class:`DerivedLabeler` turns what the queue says into
:class:`~streams.schemas.Label` objects for the same label join as explicit labels.

Known limit: the watermark is per scorer; with several workers splitting customers, a worker ahead in
event time fires deadlines of customers another worker has not caught up with.

The churn pipeline's features ``customer_lifetime_value`` and ``days_since_last_order`` are derived features
registered here by :func:`add_churn_features` (``lifetime_spend`` and ``seconds_since_last_order / 86400``)
until ``features/`` defines them.
"""

from __future__ import annotations

import heapq
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features import FeatureStore
from hanzo.ml.schemas.events import Label

logger = logging.getLogger(__name__)

__all__ = [
    "DAY_MS",
    "DeadlineQueue",
    "DerivedLabeler",
    "InMemoryDeadlineQueue",
    "RedisDeadlineQueue",
    "add_churn_features",
    "deadline_keys",
    "reference_subject",
]

DAY_MS = 86_400_000

#: (subject, label value 0/1, label event time in ms)
Resolution = tuple[str, int, int]


def reference_subject(customer_id: str, event_time_ms: int) -> str:
    """The subject of the reference point a customer's order at ``event_time_ms`` opens.

    Examples
    --------
    >>> reference_subject("c42", 1_767_225_600_000)
    'c42:1767225600000'
    """
    return f"{customer_id}:{int(event_time_ms)}"


def deadline_keys(model: str, prefix: str = "") -> tuple[str, str]:
    """The Redis keys of ``model``'s deadline queue: the sorted set and the open-reference hash.

    Both carry the hash tag ``{model}``, so the script touching both runs on Redis Cluster.

    Examples
    --------
    >>> deadline_keys("churn_prediction", "t1:")
    ('t1:dl:{churn_prediction}', 't1:dl:{churn_prediction}:open')
    """
    zset = f"{prefix}dl:{{{model}}}"
    return zset, f"{zset}:open"


class DeadlineQueue(ABC):
    """Open references by due time; resolves them from new orders and the watermark."""

    @abstractmethod
    def observe(
        self, references: Sequence[tuple[str, int]], watermark_ms: int, horizon_ms: int
    ) -> list[Resolution]:
        """Add ``(customer_id, order_time_ms)`` references in order, then fire every due deadline.

        Returns the resolutions (subject, 0/1, label event time) in the order they happened: the ones the
        orders closed, then the deadlines at or before ``watermark_ms`` by due time (ties by subject).
        """


class InMemoryDeadlineQueue(DeadlineQueue):
    """The deadline queue in process memory (a heap by due time).

    Examples
    --------
    >>> q = InMemoryDeadlineQueue()
    >>> day = 86_400_000
    >>> q.observe([("c1", 0), ("c2", 0)], watermark_ms=0, horizon_ms=90 * day)
    []
    >>> q.observe([("c1", 10 * day)], watermark_ms=10 * day, horizon_ms=90 * day)
    [('c1:0', 0, 864000000)]
    >>> q.observe([], watermark_ms=95 * day, horizon_ms=90 * day)
    [('c2:0', 1, 7776000000)]
    >>> len(q)
    1
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._due: dict[str, int] = {}
        self._open: dict[str, str] = {}
        self._heap: list[tuple[int, str]] = []

    def observe(
        self, references: Sequence[tuple[str, int]], watermark_ms: int, horizon_ms: int
    ) -> list[Resolution]:
        """See :meth:`DeadlineQueue.observe`."""
        out: list[Resolution] = []
        for customer, t in references:
            member = reference_subject(customer, t)
            opened = self._open.get(customer)
            if opened is not None and opened in self._due:
                due = self._due[opened]
                if opened == member or t < due - horizon_ms:
                    continue
                del self._due[opened]
                out.append((opened, 0, t) if t < due else (opened, 1, due))
            due = t + horizon_ms
            self._due[member] = due
            self._open[customer] = member
            heapq.heappush(self._heap, (due, member))
        heap = self._heap
        while heap and heap[0][0] <= watermark_ms:
            due, member = heapq.heappop(heap)
            if self._due.get(member) != due:
                continue  # closed by an order, or re-opened with another due time
            del self._due[member]
            customer = member.rpartition(":")[0]
            if self._open.get(customer) == member:
                del self._open[customer]
            out.append((member, 1, due))
        return out

    def __len__(self) -> int:
        return len(self._due)


# KEYS: the sorted set (subject -> due ms) and the hash (customer -> open subject).
# ARGV: horizon ms, watermark ms, then customer, time pairs. Returns flat subject, value, time triples.
_OBSERVE_LUA = """
local z, h = KEYS[1], KEYS[2]
local horizon = tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV, 2 do
  local customer, t = ARGV[i], tonumber(ARGV[i + 1])
  local member = customer .. ':' .. ARGV[i + 1]
  local skip = false
  local opened = redis.call('HGET', h, customer)
  if opened then
    local due = redis.call('ZSCORE', z, opened)
    if due then
      due = tonumber(due)
      if opened == member or t < due - horizon then
        skip = true
      else
        redis.call('ZREM', z, opened)
        out[#out + 1] = opened
        if t < due then
          out[#out + 1] = 0
          out[#out + 1] = t
        else
          out[#out + 1] = 1
          out[#out + 1] = due
        end
      end
    end
  end
  if not skip then
    redis.call('ZADD', z, t + horizon, member)
    redis.call('HSET', h, customer, member)
  end
end
local fired = redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[2], 'WITHSCORES')
for j = 1, #fired, 2 do
  local member = fired[j]
  redis.call('ZREM', z, member)
  local customer = string.match(member, '^(.*):')
  if redis.call('HGET', h, customer) == member then
    redis.call('HDEL', h, customer)
  end
  out[#out + 1] = member
  out[#out + 1] = 1
  out[#out + 1] = tonumber(fired[j + 1])
end
return out
"""


class RedisDeadlineQueue(DeadlineQueue):
    """The deadline queue in Redis (:func:`deadline_keys`), one atomic Lua script per batch.

    Parameters
    ----------
    client
        A sync redis-py client.
    model
        The pipeline whose references these are.
    key_prefix
        Prefix of the keys.

    Examples
    --------
    >>> RedisDeadlineQueue(client=None, model="churn_prediction").keys
    ('dl:{churn_prediction}', 'dl:{churn_prediction}:open')
    """

    def __init__(self, client: Any, model: str, key_prefix: str = "") -> None:
        self.client = client
        self.model = model
        self.key_prefix = key_prefix
        self.keys = deadline_keys(model, key_prefix)
        self._script: Any = None

    def observe(
        self, references: Sequence[tuple[str, int]], watermark_ms: int, horizon_ms: int
    ) -> list[Resolution]:
        """See :meth:`DeadlineQueue.observe`."""
        if self._script is None:
            self._script = self.client.register_script(_OBSERVE_LUA)
        args: list[Any] = [int(horizon_ms), int(watermark_ms)]
        for customer, t in references:
            args += [customer, int(t)]
        flat = self._script(keys=list(self.keys), args=args)
        return [(_text(flat[i]), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DerivedLabeler:
    """Labels of rule ``no_order_within_horizon`` for one customer-level pipeline, from its deadline queue.

    Parameters
    ----------
    model
        The pipeline name (the label ids start with it).
    target
        The label name (``spec.data.label``, e.g. ``churned_90d``).
    horizon_days
        ``spec.labels.horizon_days``.
    queue
        :class:`InMemoryDeadlineQueue` or :class:`RedisDeadlineQueue`.

    Examples
    --------
    >>> labeler = DerivedLabeler("churn", "churned_90d", 90, InMemoryDeadlineQueue())
    >>> t0 = 1_767_225_600_000
    >>> labeler.observe([("c1", t0)], watermark_ms=t0)
    []
    >>> [(lab.subject_id, lab.value) for lab in labeler.observe([("c1", t0 + DAY_MS)], t0 + DAY_MS)]
    [('c1:1767225600000', 0.0)]
    """

    def __init__(self, model: str, target: str, horizon_days: int, queue: DeadlineQueue) -> None:
        self.model = model
        self.target = target
        self.horizon_days = horizon_days
        self.queue = queue
        self.horizon_ms = int(horizon_days * DAY_MS)
        self.emitted = 0

    def observe(self, references: Sequence[tuple[str, int]], watermark_ms: int) -> list[Label]:
        """Add references (``(customer_id, order_time_ms)``), advance the watermark; return new labels."""
        labels = [
            Label(
                label_id=f"{self.model}:{subject}",
                target=self.target,
                subject_id=subject,
                value=float(value),
                event_time=t,
            )
            for subject, value, t in self.queue.observe(references, watermark_ms, self.horizon_ms)
        ]
        self.emitted += len(labels)
        return labels

    def __repr__(self) -> str:
        return f"DerivedLabeler({self.model!r}, {self.target!r}, horizon_days={self.horizon_days})"


#: Churn features defined here (name -> (depends_on, description)) until features/ defines them.
CHURN_FEATURES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "customer_lifetime_value": (("lifetime_spend",), "sum of all order totals (= lifetime_spend)"),
    "days_since_last_order": (
        ("seconds_since_last_order",),
        "days since the previous order (-1 for a first order)",
    ),
}


def _clv(f: Mapping[str, float]) -> float:
    return float(f["lifetime_spend"])


def _days_since(f: Mapping[str, float]) -> float:
    s = float(f["seconds_since_last_order"])
    return -1.0 if s < 0 else s / 86_400


def add_churn_features(store: FeatureStore) -> list[str]:
    """Register the churn pipeline's derived features on ``store`` where it lacks them; return those added.

    Examples
    --------
    >>> store = FeatureStore()
    >>> add_churn_features(store)
    ['customer_lifetime_value', 'days_since_last_order']
    >>> add_churn_features(store)
    []
    """
    known = {f.name for f in store.list_features()}
    functions = {"customer_lifetime_value": _clv, "days_since_last_order": _days_since}
    added = []
    for name, (deps, description) in CHURN_FEATURES.items():
        if name in known:
            continue
        if not all(d in known for d in deps):
            msg = (
                f"cannot define {name!r}: the feature store lacks {', '.join(deps)}; add it to features.yaml"
            )
            raise ConfigError(msg)
        store.feature(functions[name], depends_on=deps, name=name, description=description)
        added.append(name)
    return added
