"""The prediction cache of :class:`learners.serving.ServingEngine`: a bounded LRU, safe across threads.

An entry is keyed by ``(model, model generation, entity id, request-time features)`` and remembers the
stored feature values it was computed from. A lookup hits only when the values just read from the store
are equal to the remembered ones, so a change of the entity's features invalidates it exactly, and a new
model version (a new generation) never sees the old version's entries.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable

logger = logging.getLogger(__name__)

#: The stored feature values an entry was computed from, in the model's feature order.
Stamp = tuple[float | str | None, ...]


class PredictionCache:
    """A least-recently-used map of cache keys to scores, validated against the stored features.

    Parameters
    ----------
    size
        Most entries kept; ``0`` disables the cache (every lookup misses, nothing is stored).

    Examples
    --------
    >>> cache = PredictionCache(size=2)
    >>> key = ("fraud", 1, "c1", (("order_total", 120.0),))
    >>> cache.put(key, (3.0, None), 0.42)
    >>> cache.get(key, (3.0, None))
    0.42
    >>> cache.get(key, (4.0, None)) is None  # the entity's features changed
    True
    >>> cache.hits, cache.misses, len(cache)
    (1, 1, 0)
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._reset()

    def _reset(self) -> None:
        self._entries: OrderedDict[Hashable, tuple[Stamp, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, stamp: Stamp) -> float | None:
        """The cached score of ``key`` when it was computed from ``stamp``, else ``None`` (and forget it)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if entry[0] != stamp:
                del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, stamp: Stamp, score: float) -> None:
        """Remember ``score`` for ``key``, computed from the stored values ``stamp``."""
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (stamp, score)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop_model(self, model: str) -> int:
        """Forget every entry of ``model`` (keys start with the model name); return how many."""
        with self._lock:
            stale = [k for k in self._entries if isinstance(k, tuple) and k and k[0] == model]
            for k in stale:
                del self._entries[k]
        return len(stale)

    def clear(self) -> None:
        """Forget every entry (the hit and miss counters are kept)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
