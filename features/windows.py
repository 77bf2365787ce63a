"""Window semantics shared by every online store, the Lua generator and the tests.

Everything here is by **event time** (the event's own ``event_time``, epoch milliseconds), never by the
clock of the machine that processes it.

Buckets
-------
A windowed aggregate keeps one partial value per *bucket* of ``b`` milliseconds. The bucket of an event at
``ts`` is ``floor(ts / b)``. The bucket size (the window's precision) follows from the window length:

=====================  ===========  ======================================
window ``W``           bucket ``b`` buckets per window
=====================  ===========  ======================================
``W <= 1h``            1 minute     ``W / 1m`` (``1h``: 60)
``1h < W <= 24h``      15 minutes   ``W / 15m`` (``24h``: 96)
``24h < W <= 7d``      1 hour       ``W / 1h`` (``7d``: 168)
``W > 7d``             1 day        ``W / 1d`` (``30d``: 30, ``90d``: 90)
``lifetime``           none         one running value, no buckets
=====================  ===========  ======================================

``W`` must be a whole number of buckets (``100m`` is refused: say ``bucket: 5m`` or pick ``90m``); an
aggregate may state its own ``bucket`` that divides ``W``.

The value of window ``W`` as of time ``t``
    aggregates the buckets with index ``i`` in ``(floor(t/b) - W/b, floor(t/b)]``. The precision is one
    bucket: the oldest events counted may be up to ``b`` older than ``t - W``, and events of the bucket of
    ``t`` that are later than ``t`` (out-of-order arrivals) are included.

Lateness
    Every entity remembers its largest event time ``M``. An event at ``ts < M - allowed_lateness`` is
    *late*: it is counted (status ``late``) and not applied. Any other event, in order or not, is applied
    exactly to its own bucket.

Retention
    On every applied write, the buckets that no read within the lateness can need any more, those with
    ``i <= floor((M - allowed_lateness) / b) - W/b``, are deleted. A read as of ``t >= M - allowed_lateness``
    is therefore exact (to the bucket); a read further in the past sees a partial window.

``mean``
    ``sum / count`` of the values in the window (``None`` when the window has none).

``distinct_count``
    Exact: each bucket keeps the set of distinct values it saw, up to :data:`DISTINCT_LIMIT` values; the
    window's value is the size of the union of its buckets' sets. Values past the limit of one bucket are
    not recorded, so beyond it the count is a lower bound.

``time_since_last``
    As of ``t``: ``(t - L) / 1000`` seconds, where ``L`` is the latest event time of the entity (matching
    the aggregate's filter) known in the window, clamped at 0 when ``L > t``. For the **event being
    scored** it is computed *before* that event is applied: seconds since the previous event of that
    entity. With no previous event the value is the aggregate's default, :data:`NO_PREVIOUS_EVENT`
    (``-1.0``) unless the definition states another. Every other aggregate returned to the scoring path
    *includes* the event being scored.

``lifetime``
    One running value over every event applied so far (no buckets, so reads in the past see it whole).
"""

from __future__ import annotations

import re
from functools import lru_cache

from hanzo.ml.config.errors import ConfigError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

#: The name of the unbounded window.
LIFETIME = "lifetime"

#: Most distinct values one bucket of a ``distinct_count`` aggregate records.
DISTINCT_LIMIT = 256

#: Default of ``time_since_last`` when the entity has no previous event.
NO_PREVIOUS_EVENT = -1.0

#: ``(largest window, bucket)`` pairs, the rule of the table above.
BUCKET_RULE: tuple[tuple[int, int], ...] = (
    (HOUR_MS, MINUTE_MS),
    (24 * HOUR_MS, 15 * MINUTE_MS),
    (7 * DAY_MS, HOUR_MS),
)

_UNITS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
_DURATION = re.compile(r"^([1-9][0-9]*)([mhd])$")


@lru_cache(maxsize=256)  # pure, and called per event and aggregate on the in-memory path
def parse_duration(text: str) -> int:
    """Milliseconds of a duration ``"<n>m"``, ``"<n>h"`` or ``"<n>d"``.

    Examples
    --------
    >>> parse_duration("24h"), parse_duration("15m")
    (86400000, 900000)
    """
    m = _DURATION.match(text.strip())
    if m is None:
        msg = f"duration {text!r} is not '<n>m', '<n>h' or '<n>d' (e.g. '15m', '24h', '30d')"
        raise ConfigError(msg)
    return int(m.group(1)) * _UNITS[m.group(2)]


@lru_cache(maxsize=256)
def parse_window(text: str) -> int | None:
    """Milliseconds of a window, or ``None`` for ``"lifetime"``.

    Examples
    --------
    >>> parse_window("7d"), parse_window("lifetime")
    (604800000, None)
    """
    if text.strip() == LIFETIME:
        return None
    try:
        return parse_duration(text)
    except ConfigError:
        msg = f"window {text!r} is not 'lifetime' or '<n>m|h|d' (e.g. '1h', '24h', '7d', '30d', '90d')"
        raise ConfigError(msg) from None


def default_bucket_ms(window_ms: int) -> int:
    """Return the bucket size the rule table gives a window.

    Examples
    --------
    >>> [default_bucket_ms(parse_duration(w)) // MINUTE_MS for w in ("1h", "24h", "7d", "30d")]
    [1, 15, 60, 1440]
    """
    for largest, bucket in BUCKET_RULE:
        if window_ms <= largest:
            return bucket
    return DAY_MS


def format_duration(ms: int) -> str:
    """Spell a whole number of minutes as the shortest ``<n>m|h|d``.

    Examples
    --------
    >>> format_duration(900000), format_duration(86400000)
    ('15m', '1d')
    """
    for unit, size in (("d", DAY_MS), ("h", HOUR_MS)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms // MINUTE_MS}m"


def bucket_index(ts_ms: int, bucket_ms: int) -> int:
    """Index of the bucket holding time ``ts_ms``: ``floor(ts / b)``."""
    return ts_ms // bucket_ms


def window_range(as_of_ms: int, bucket_ms: int, n_buckets: int) -> tuple[int, int]:
    """``(lo, hi)``: the window as of ``as_of_ms`` holds the buckets with ``lo < i <= hi``.

    Examples
    --------
    >>> window_range(10 * HOUR_MS + 30 * MINUTE_MS, HOUR_MS, 24)
    (-14, 10)
    """
    hi = as_of_ms // bucket_ms
    return hi - n_buckets, hi


def is_late(ts_ms: int, max_ts_ms: int | None, allowed_lateness_ms: int) -> bool:
    """Whether an event at ``ts_ms`` is too late for an entity whose latest event is at ``max_ts_ms``.

    Examples
    --------
    >>> is_late(1_000, 5_000, 3_000), is_late(2_000, 5_000, 3_000), is_late(1, None, 0)
    (True, False, False)
    """
    return max_ts_ms is not None and ts_ms < max_ts_ms - allowed_lateness_ms


def expired_below(max_ts_ms: int, allowed_lateness_ms: int, bucket_ms: int, n_buckets: int) -> int:
    """Buckets with index ``<=`` this value can be deleted (no read within the lateness needs them).

    Examples
    --------
    >>> expired_below(100 * HOUR_MS, 2 * HOUR_MS, HOUR_MS, 24)
    74
    """
    return (max_ts_ms - allowed_lateness_ms) // bucket_ms - n_buckets
