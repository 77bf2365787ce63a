"""History files: one event per line as JSON, each with its ``kind``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, parse_event, to_json

logger = logging.getLogger(__name__)

Event = Order | CustomerEvent | Label


def write_jsonl(events: Iterable[Event], path: str | Path) -> int:
    """Write ``events`` to ``path``, one JSON object per line; returns the number written.

    The file is replaced. Lines are the wire format of :func:`streams.schemas.to_json`.

    Examples
    --------
    >>> import tempfile
    >>> from hanzo.ml.schemas.events import Label
    >>> path = Path(tempfile.mkdtemp()) / "h.jsonl"
    >>> write_jsonl([Label(label_id="l1", target="fraud", subject_id="o1", value=0.0,
    ...                    event_time=1_767_225_600_000)], path)
    1
    >>> [e.subject_id for e in read_jsonl(path)]
    ['o1']
    """
    n = 0
    with Path(path).open("wb") as out:
        write = out.write
        for event in events:
            write(to_json(event) + b"\n")
            n += 1
    logger.debug("wrote %d events to %s", n, path)
    return n


def read_jsonl(path: str | Path) -> Iterator[Event]:
    """Yield the events of a history file in file order; blank lines are skipped.

    Raises
    ------
    ValidationError
        On the first bad line, naming the file, the line number and the field.
    """
    with Path(path).open("rb") as src:
        for lineno, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                yield parse_event(line)
            except ValidationError as exc:
                msg = f"{path}, line {lineno}: {exc}; fix or remove the line"
                raise ValidationError(msg) from None
