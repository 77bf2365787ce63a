"""Event schemas and dead letters: the commerce records every package reads, below all but config.

- :mod:`hanzo.ml.schemas.events` -- :class:`Order`, :class:`CustomerEvent`, :class:`Label`,
  :func:`parse_event`, :func:`to_json`.
- :mod:`hanzo.ml.schemas.dead_letters` -- :class:`DeadLetter`, the record a rejected message becomes.
- :mod:`hanzo.ml.schemas.jsonl` -- read and write event history files, one event per line.
"""

from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, OrderItem, parse_event, to_json
from hanzo.ml.schemas.jsonl import read_jsonl, write_jsonl

__all__ = [
    "CustomerEvent",
    "DeadLetter",
    "Label",
    "Order",
    "OrderItem",
    "parse_event",
    "read_jsonl",
    "to_json",
    "write_jsonl",
]
