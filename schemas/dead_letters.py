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
