"""The alias log: parsing ``history.jsonl``, the rollback target, the versions that ever held an alias."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pydantic

from hanzo.ml.registry.records import AliasEvent

logger = logging.getLogger(__name__)

#: Actions that point an alias at ``to_version``.
MOVING_ACTIONS = frozenset({"promote", "set", "rollback"})


def parse_history(raw: bytes, where: str) -> list[AliasEvent]:
    """Parse the JSON lines of an alias log.

    A line that is not a valid event (the trace of a crash in the middle of an append) is skipped with a
    warning naming the file and the line; the other events are kept.
    """
    events: list[AliasEvent] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(AliasEvent.model_validate_json(line))
        except pydantic.ValidationError as exc:
            logger.warning(
                "alias log %s line %d is not a valid alias event (%s); skipping it",
                where,
                number,
                exc.errors()[0]["msg"],
            )
    return events


def alias_stack(events: Iterable[AliasEvent], alias: str) -> list[str]:
    """Replay the log of ``alias`` as a stack: promote/set push, rollback pops; oldest first."""
    stack: list[str] = []
    for event in events:
        if event.alias != alias:
            continue
        if event.action == "rollback":
            if stack:
                stack.pop()
            if event.to_version is not None and (not stack or stack[-1] != event.to_version):
                stack.append(event.to_version)  # a log that predates the stack rule: trust the event
        elif event.action in ("promote", "set") and event.to_version is not None:
            if not stack or stack[-1] != event.to_version:
                stack.append(event.to_version)
    return stack


def rollback_target(events: Iterable[AliasEvent], alias: str, current: str, existing: set[str]) -> str | None:
    """Return the version that held ``alias`` before ``current`` and still exists, or None.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> log = [AliasEvent(time=t, alias="production", from_version=f, to_version=v, action=a)
    ...        for f, v, a in [(None, "1.0.0", "promote"), ("1.0.0", "1.1.0", "promote"),
    ...                        ("1.1.0", "1.2.0", "promote"), ("1.2.0", "1.1.0", "rollback")]]
    >>> rollback_target(log, "production", "1.1.0", {"1.0.0", "1.1.0", "1.2.0"})
    '1.0.0'
    """
    stack = [v for v in alias_stack(events, alias) if v in existing]
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def ever_aliased(events: Iterable[AliasEvent], aliases: Mapping[str, str]) -> set[str]:
    """Every version that holds an alias now or held one at some point in the log."""
    held = set(aliases.values())
    for event in events:
        if event.action in MOVING_ACTIONS and event.to_version is not None:
            held.add(event.to_version)
        if event.action != "gate_rejected" and event.from_version is not None:
            held.add(event.from_version)
    return held
