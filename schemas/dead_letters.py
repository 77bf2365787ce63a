"""Dead letters: a message we cannot use is published with its original bytes and the reason.

Nothing is dropped silently. Each dead letter is a JSON object on the dead-letter topic:
``{"reason", "error", "topic", "partition", "offset", "timestamp_ms", "key_b64", "value_b64"}``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hanzo.ml.schemas.wire_json import dumps as dumps_json

logger = logging.getLogger(__name__)

#: Reasons are a short closed vocabulary (metric label values), the detail goes in ``error``.
REASONS = (
    "not_utf8",
    "malformed_json",
    "not_an_object",
    "schema",
    "unknown_schema_version",
    "non_finite",
    "oversized",
    "timestamp",
    "internal",
)


def classify(error: str) -> str:
    """Map a validation message to one of :data:`REASONS`.

    Examples
    --------
    >>> classify("order: field 'order_id' is missing; field 'event_time' is missing")
    'schema'
    >>> classify("malformed JSON: Expecting value")
    'malformed_json'
    >>> classify("order: field 'event_time': value 1700000000: Input should be greater than or equal to 1")
    'timestamp'
    """
    e = error.lower()
    if e.startswith("not utf-8"):
        return "not_utf8"
    if "not a finite number" in e or "finite number" in e:
        return "non_finite"
    if e.startswith("malformed json"):
        return "malformed_json"
    if e.startswith("expected a json object"):
        return "not_an_object"
    if "schema_version" in e:
        return "unknown_schema_version"
    if e.startswith("oversized"):
        return "oversized"
    if re.search(r"field '[a-z_]*_time': value", e):
        return "timestamp"
    return "schema"


@dataclass(frozen=True)
class DeadLetter:
    """One unusable message, with where it came from and why."""

    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def to_json(self) -> bytes:
        """The wire form on the dead-letter topic."""
        doc: dict[str, Any] = {
            "reason": self.reason,
            "error": self.error[:2000],
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": int(time.time() * 1000),
            "key_b64": base64.b64encode(self.key).decode() if self.key is not None else None,
            "value_b64": base64.b64encode(self.value).decode() if self.value is not None else None,
        }
        return dumps_json(doc)

    @classmethod
    def from_json(cls, raw: bytes) -> DeadLetter:
        """Read a dead letter back (for ``hanzo-ml dlq``)."""
        d = json.loads(raw)
        return cls(
            reason=d["reason"],
            error=d["error"],
            topic=d["topic"],
            partition=d["partition"],
            offset=d["offset"],
            key=base64.b64decode(d["key_b64"]) if d.get("key_b64") is not None else None,
            value=base64.b64decode(d["value_b64"]) if d.get("value_b64") is not None else None,
        )


class DeadLetterWarnings:
    """Warn about dead letters at most once per ``interval_s``, with the counts since the last warning.

    A stream of bad messages must not become a stream of log lines (one per message): every dead letter is
    on the dead-letter topic with its reason and counted in ``hanzo_dead_letters_total``; the log says how
    many, by reason, and shows the latest. The first dead letter is logged at once, the ones that follow
    within ``interval_s`` with the next warning (when a dead letter comes after the interval).

    Examples
    --------
    >>> now = [0.0]
    >>> w = DeadLetterWarnings(interval_s=10.0, clock=lambda: now[0])
    >>> d = DeadLetter("schema", "order: field 'total' is missing", "orders", 0, 7, None, b"{}")
    >>> w.note([d]), w.note([d, d]), w.pending
    (True, False, 2)
    >>> now[0] = 11.0
    >>> w.note([d]), w.pending
    (True, 0)
    """

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._reasons: Counter[str] = Counter()
        self._last: float | None = None

    @property
    def pending(self) -> int:
        """Dead letters noted and not yet in a warning."""
        return sum(self._reasons.values())

    def note(self, letters: Sequence[DeadLetter]) -> bool:
        """Count ``letters``; log a warning when the interval has passed. Returns whether it logged."""
        if not letters:
            return False
        self._reasons.update(d.reason for d in letters)
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        d = letters[-1]
        reasons = ", ".join(f"{reason} {n}" for reason, n in self._reasons.most_common())
        logger.warning(
            "%d dead letters (%s); the latest %s/%d@%d: %s",
            self.pending,
            reasons,
            d.topic,
            d.partition,
            d.offset,
            d.error[:200],
        )
        self._reasons.clear()
        return True
