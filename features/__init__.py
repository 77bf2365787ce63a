"""Feature store: declarative windowed aggregates by event time, kept in Redis by generated Lua scripts.

- :mod:`features.definitions` -- :class:`Aggregate`, :func:`load_definitions` (``config/features.yaml``),
  :func:`raw_features` (request-time features of the order being scored).
- :mod:`features.windows` -- the window semantics (buckets, as-of reads, lateness, retention).
- :mod:`features.store` -- :class:`FeatureStore`: ``apply_batch``, ``get_features``, ``@store.feature``.
- :mod:`features.redis_store` -- :class:`RedisOnlineStore` and its key layout;
  :mod:`features.memory_store` -- :class:`InMemoryOnlineStore`, the same semantics in memory.
- :mod:`features.backfill` -- replay a history file or the topics through ``apply_batch``.
"""

from hanzo.ml.features.backend import ApplyResult, EventRecord, OnlineStore
from hanzo.ml.features.definitions import Aggregate, load_definitions, raw_features
from hanzo.ml.features.memory_store import InMemoryOnlineStore
from hanzo.ml.features.redis_store import RedisOnlineStore
from hanzo.ml.features.store import AsyncFeatureReader, FeatureInfo, FeatureStore

__all__ = [
    "Aggregate",
    "AsyncFeatureReader",
    "ApplyResult",
    "EventRecord",
    "FeatureInfo",
    "FeatureStore",
    "InMemoryOnlineStore",
    "OnlineStore",
    "RedisOnlineStore",
    "load_definitions",
    "raw_features",
]
