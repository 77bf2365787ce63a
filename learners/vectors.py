"""Where the scoring path keeps scores and scored vectors, and the learner reads the vectors back.

One small interface, :class:`VectorStore`, with a Redis implementation (:class:`RedisVectorStore`: one
pipeline per batch, the keys of :mod:`learners.keys`) and an in-memory one (:class:`InMemoryVectorStore`,
used by ``hanzo-ml train`` and the unit tests). The worker and ``hanzo-ml train`` run the same
:class:`~streams.order_processor.OrderProcessor` and :class:`~streams.learner_service.LabelJoiner` over
either, so history and the live stream go through one code path.

Label horizon. Every fresh vector is also entered, with its event time, in an index of the vectors still
waiting for a label (``{prefix}xi:{model}``, a sorted set, in Redis). A join removes it from the index
(:meth:`VectorStore.mark_labelled`); :meth:`VectorStore.expire` deletes the vectors indexed before a cutoff
in event time and returns how many it deleted (unlabelled vectors that reached the label horizon).
"""

from __future__ import annotations

import heapq
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.cluster import RedisCluster

from hanzo.ml.learners.keys import score_key, vector_key
from hanzo.ml.schemas import wire_json

logger = logging.getLogger(__name__)

__all__ = [
    "InMemoryVectorStore",
    "RedisVectorStore",
    "ScoreWrite",
    "VectorStore",
    "VectorWrite",
    "vector_index_key",
]


def vector_index_key(model: str, prefix: str = "") -> str:
    """Key of the sorted set of ``model``'s vectors still waiting for a label (score: event time, ms).

    Examples
    --------
    >>> vector_index_key("churn_prediction", prefix="t1:")
    't1:xi:churn_prediction'
    """
    return f"{prefix}xi:{model}"


@dataclass(frozen=True, slots=True)
class ScoreWrite:
    """One score record for ``score:{model}:{subject}``."""

    model: str
    subject: str
    record: dict[str, Any]
    ttl_s: int


@dataclass(frozen=True, slots=True)
class VectorWrite:
    """One scored vector for ``x:{model}:{subject}``.

    ``fresh`` is False for a re-delivered event: the vector is then written only where none is stored
    (a retry after a crash fills the gap; a duplicate never replaces the vector that was scored first) and
    it is not entered in the label-horizon index again.
    """

    model: str
    subject: str
    x: dict[str, Any]
    score: float
    event_time_ms: int
    ttl_s: int
    fresh: bool = True

    def record(self) -> dict[str, Any]:
        """The stored value: ``{"x": ..., "score": ..., "event_time_ms": ...}``."""
        return {"x": self.x, "score": self.score, "event_time_ms": self.event_time_ms}


class VectorStore(ABC):
    """Scores and scored vectors, written per batch by the scorer and read per batch by the learner."""

    @abstractmethod
    def write(
        self,
        scores: Sequence[ScoreWrite],
        vectors: Sequence[VectorWrite],
        expire_before: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Write a batch of scores and vectors (one round trip).

        ``expire_before`` (model -> event time, ms) first deletes each model's vectors waiting for a label
        from before that time, as :meth:`expire` does, in the same round trip; returns how many per model.
        """

    @abstractmethod
    def read(self, model: str, subjects: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored vector record of each subject (``None`` when there is none), one round trip."""

    @abstractmethod
    def mark_labelled(self, model: str, subjects: Sequence[str]) -> None:
        """Take these subjects out of the label-horizon index (their label was learned)."""

    @abstractmethod
    def expire(self, model: str, before_ms: int) -> int:
        """Delete the vectors waiting for a label with event time before ``before_ms``; count them."""

    @abstractmethod
    def get_score(self, model: str, subject: str) -> dict[str, Any] | None:
        """The latest score record of ``subject`` (``None`` when there is none)."""


class InMemoryVectorStore(VectorStore):
    """A :class:`VectorStore` in process memory (TTLs are not applied; :meth:`expire` bounds the vectors).

    Examples
    --------
    >>> store = InMemoryVectorStore()
    >>> store.write([], [VectorWrite("churn", "c1:1000", {"clv": 3.0}, 0.2, 1000, ttl_s=60)])
    {}
    >>> store.read("churn", ["c1:1000", "c2:5"])
    [{'x': {'clv': 3.0}, 'score': 0.2, 'event_time_ms': 1000}, None]
    >>> store.expire("churn", before_ms=2000)
    1
    >>> store.read("churn", ["c1:1000"])
    [None]
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._scores: dict[tuple[str, str], dict[str, Any]] = {}
        self._vectors: dict[tuple[str, str], dict[str, Any]] = {}
        self._waiting: dict[str, dict[str, int]] = {}  # model -> subject -> event time
        self._heaps: dict[str, list[tuple[int, str]]] = {}

    def write(
        self,
        scores: Sequence[ScoreWrite],
        vectors: Sequence[VectorWrite],
        expire_before: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Expire, then store the batch (``fresh=False`` vectors only where none is stored)."""
        expired = {model: self.expire(model, t) for model, t in (expire_before or {}).items()}
        for s in scores:
            self._scores[(s.model, s.subject)] = dict(s.record)
        for v in vectors:
            key = (v.model, v.subject)
            if not v.fresh:
                self._vectors.setdefault(key, v.record())
                continue
            self._vectors[key] = v.record()
            self._waiting.setdefault(v.model, {})[v.subject] = v.event_time_ms
            heapq.heappush(self._heaps.setdefault(v.model, []), (v.event_time_ms, v.subject))
        return expired

    def read(self, model: str, subjects: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored records, in order."""
        return [self._vectors.get((model, s)) for s in subjects]

    def mark_labelled(self, model: str, subjects: Sequence[str]) -> None:
        """Forget these subjects in the horizon index."""
        waiting = self._waiting.get(model)
        if waiting:
            for s in subjects:
                waiting.pop(s, None)

    def expire(self, model: str, before_ms: int) -> int:
        """Delete the waiting vectors older than ``before_ms``."""
        heap = self._heaps.get(model)
        waiting = self._waiting.get(model, {})
        n = 0
        while heap and heap[0][0] < before_ms:
            t, subject = heapq.heappop(heap)
            if waiting.get(subject) == t:
                del waiting[subject]
                self._vectors.pop((model, subject), None)
                n += 1
        return n

    def get_score(self, model: str, subject: str) -> dict[str, Any] | None:
        """The latest score record."""
        return self._scores.get((model, subject))

    def __len__(self) -> int:
        return len(self._vectors)


# KEYS[1]: the horizon index. ARGV[1]: cutoff (ms, exclusive); ARGV[2]: the vector key prefix.
_EXPIRE_LUA = """
local subjects = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 5000)
for _, s in ipairs(subjects) do
  redis.call('ZREM', KEYS[1], s)
  redis.call('DEL', ARGV[2] .. s)
end
return #subjects
"""


# One call writes a whole batch. KEYS: the keys to SET, then one horizon index per model with fresh vectors,
# then one horizon index per model to expire. ARGV[1..3]: how many of each; then per index to expire: the
# cutoff (ms, exclusive) and its vector key prefix; then how many runs of SET keys share a TTL and NX flag,
# and per run: its length, the TTL (s) and "1" for SET NX else "0"; then the value of each SET key; then per
# index with fresh vectors: how many members, followed by (event time, subject) pairs. The expiry goes
# first (as a separate call before the batch would); it returns {SET keys, vectors expired per index}.
_WRITE_LUA = """
local n, z, e = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
local out = {n}
for j = 1, e do
  local subjects = redis.call('ZRANGEBYSCORE', KEYS[n + z + j], '-inf', '(' .. ARGV[a], 'LIMIT', 0, 5000)
  for _, s in ipairs(subjects) do
    redis.call('ZREM', KEYS[n + z + j], s)
    redis.call('DEL', ARGV[a + 1] .. s)
  end
  out[j + 1] = #subjects
  a = a + 2
end
local runs = tonumber(ARGV[a])
local v = a + 1 + 3 * runs
local i = 1
for r = 0, runs - 1 do
  local len, ttl, nx = tonumber(ARGV[a + 1 + 3 * r]), ARGV[a + 2 + 3 * r], ARGV[a + 3 + 3 * r]
  for k = 1, len do
    if nx == '1' then
      redis.call('SET', KEYS[i], ARGV[v], 'EX', ttl, 'NX')
    else
      redis.call('SET', KEYS[i], ARGV[v], 'EX', ttl)
    end
    i = i + 1
    v = v + 1
  end
end
a = v
for j = n + 1, n + z do
  local m = tonumber(ARGV[a])
  a = a + 1
  local done = 0
  while done < m do
    local take = math.min(m - done, 500)
    local args = {}
    for k = 1, 2 * take do
      args[k] = ARGV[a + k - 1]
    end
    redis.call('ZADD', KEYS[j], unpack(args))
    a = a + 2 * take
    done = done + take
  end
end
return out
"""


class RedisVectorStore(VectorStore):
    """A :class:`VectorStore` in Redis: string keys of :mod:`learners.keys` with TTLs, one pipeline a batch.

    Scores expire after their ``ttl_s``; vectors after theirs (the label horizon) as a backstop to
    :meth:`expire`. :meth:`write` sends a batch, and the expiry asked with it, as one Lua script call (one
    command to encode and one reply to read, instead of one per key; a TTL and NX flag per run of keys
    written alike, not per key); with a ``RedisCluster`` client, whose keys of a batch span hash slots, it
    sends the expiry apart and a pipeline of the same commands. :meth:`expire` runs one Lua script that
    deletes at most 5,000 vectors a call; it (and the expiry in :meth:`write`) deletes vector keys it is not
    given, so on Redis Cluster run it against the node of the index key.

    Parameters
    ----------
    client
        A sync redis-py client.
    key_prefix
        Prefix of every key.

    Examples
    --------
    >>> RedisVectorStore(client=None, key_prefix="t1:").key_prefix
    't1:'
    """

    def __init__(self, client: Any, key_prefix: str = "") -> None:
        self.client = client
        self.key_prefix = key_prefix
        self._expire_script: Any = None
        self._write_script: Any = None

    def write(
        self,
        scores: Sequence[ScoreWrite],
        vectors: Sequence[VectorWrite],
        expire_before: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Expire as asked, SET each score and vector with its TTL, ZADD fresh vectors: one script call."""
        due = dict(expire_before or {})
        if not scores and not vectors and not due:
            return {}
        p = self.key_prefix
        dumps = wire_json.dumps
        keys: list[str] = []
        values: list[bytes] = []
        runs: list[list[int]] = []  # [length, ttl, nx] of each run of keys written alike
        last: tuple[int, int] | None = None
        for s in scores:
            keys.append(f"{p}score:{s.model}:{s.subject}")
            values.append(dumps(s.record))
            if last == (s.ttl_s, 0):
                runs[-1][0] += 1
            else:
                last = (s.ttl_s, 0)
                runs.append([1, s.ttl_s, 0])
        index: dict[str, dict[str, int]] = {}
        for v in vectors:
            keys.append(f"{p}x:{v.model}:{v.subject}")
            values.append(dumps({"x": v.x, "score": v.score, "event_time_ms": v.event_time_ms}))
            nx = 0 if v.fresh else 1
            if last == (v.ttl_s, nx):
                runs[-1][0] += 1
            else:
                last = (v.ttl_s, nx)
                runs.append([1, v.ttl_s, nx])
            if v.fresh:
                index.setdefault(v.model, {})[v.subject] = v.event_time_ms
        if isinstance(self.client, RedisCluster):
            expired = {model: self.expire(model, t) for model, t in due.items()}
            self._write_pipeline(keys, values, runs, index)
            return expired
        args: list[Any] = [len(keys), len(index), len(due)]
        for model, t in due.items():
            args += (int(t), vector_key(model, "", p))
        args.append(len(runs))
        for run in runs:
            args += run
        args += values
        keys += [vector_index_key(model, p) for model in index]
        for members in index.values():
            args.append(len(members))
            for subject, t in members.items():
                args += (t, subject)
        keys += [vector_index_key(model, p) for model in due]
        if self._write_script is None:
            self._write_script = self.client.register_script(_WRITE_LUA)
        reply = self._write_script(keys=keys, args=args)
        return {model: int(n) for model, n in zip(due, reply[1:], strict=True)}

    def _write_pipeline(
        self, keys: list[str], values: list[bytes], runs: list[list[int]], index: dict[str, dict[str, int]]
    ) -> None:
        """The same writes as a pipeline of SETs and ZADDs (Redis Cluster: the keys span hash slots)."""
        pipe = self.client.pipeline(transaction=False)
        i = 0
        for length, ttl_s, nx in runs:
            for _ in range(length):
                pipe.set(keys[i], values[i], ex=ttl_s, nx=bool(nx))
                i += 1
        for model, members in index.items():
            pipe.zadd(vector_index_key(model, self.key_prefix), members)
        pipe.execute()

    def read(self, model: str, subjects: Sequence[str]) -> list[dict[str, Any] | None]:
        """One MGET of the vector keys."""
        if not subjects:
            return []
        raws = self.client.mget([vector_key(model, s, self.key_prefix) for s in subjects])
        return [None if raw is None else json.loads(raw) for raw in raws]

    def mark_labelled(self, model: str, subjects: Sequence[str]) -> None:
        """One ZREM on the index."""
        if subjects:
            self.client.zrem(vector_index_key(model, self.key_prefix), *subjects)

    def expire(self, model: str, before_ms: int) -> int:
        """Delete (by Lua, atomically) the waiting vectors older than ``before_ms``; at most 5,000 a call."""
        if self._expire_script is None:
            self._expire_script = self.client.register_script(_EXPIRE_LUA)
        n = self._expire_script(
            keys=[vector_index_key(model, self.key_prefix)],
            args=[int(before_ms), vector_key(model, "", self.key_prefix)],
        )
        return int(n)

    def get_score(self, model: str, subject: str) -> dict[str, Any] | None:
        """GET the score key."""
        raw = self.client.get(score_key(model, subject, self.key_prefix))
        return None if raw is None else dict(json.loads(raw))
