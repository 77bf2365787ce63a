"""``hanzo-ml dlq list | replay``: inspect and replay the dead-letter topic (:mod:`~hanzo.ml.streams.dlq`)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import err_console, kafka_bootstrap, pass_settings
from hanzo.ml.streams.dlq import StoredDeadLetter, read_dead_letters, replay, unique
from hanzo.ml.streams.security import security_from


def preview(data: bytes | None, width: int = 60) -> str:
    r"""A one-line preview of a payload.

    Examples
    --------
    >>> preview(b'{"a": 1}'), preview(b"\xff\x00"), preview(None)
    ('{"a": 1}', '(2 bytes, not UTF-8) ff00', '(none)')
    """
    if data is None:
        return "(none)"
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = f"({len(data)} bytes, not UTF-8) {data[: width // 2].hex()}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(stamp: int | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_json(letter: StoredDeadLetter) -> dict[str, Any]:
    """A dead letter as a JSON document; key and value base64-encoded, as they may not be text."""

    def b64(data: bytes | None) -> str | None:
        return base64.b64encode(data).decode() if data is not None else None

    return {
        "reason": letter.reason,
        "error": letter.error,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "timestamp_ms": letter.timestamp_ms,
        "key_b64": b64(letter.key),
        "value_b64": b64(letter.value),
        "dlq_partition": letter.dlq_partition,
        "dlq_offset": letter.dlq_offset,
    }


@click.group("dlq")
def dlq_group() -> None:
    """Inspect and replay the dead-letter topic."""


@dlq_group.command("list")
@click.option("--limit", type=int, default=None, help="show only the newest N")
@click.option("--reason", default=None, help="only this reason (e.g. schema, malformed_json)")
@click.option("--json", "as_json_array", is_flag=True, help="print a JSON array instead of a table")
@pass_settings
def list_command(settings: Settings, limit: int | None, reason: str | None, as_json_array: bool) -> int:
    """Show dead letters (time, reason, source, error, value)."""
    bootstrap, topic = kafka_bootstrap(settings), settings.topic_dead_letters
    letters = asyncio.run(
        read_dead_letters(bootstrap, topic, reason=reason, limit=limit, security=security_from(settings))
    )
    if as_json_array:
        sys.stdout.write(json.dumps([as_json(x) for x in letters], indent=2) + "\n")
        return 0
    table = Table(title=f"dead letters on {topic} at {bootstrap}")
    for column in ("time (UTC)", "reason", "source"):
        table.add_column(column, no_wrap=True)
    for column in ("error", "value"):
        table.add_column(column, overflow="fold")
    for x in letters:
        table.add_row(_when(x.timestamp_ms), x.reason, x.source, x.error[:120], preview(x.value))
    console = Console()
    console.print(table)
    shown = f"{len(letters)} dead letter(s)" + (f" with reason {reason!r}" if reason else "")
    console.print(shown, markup=False, highlight=False)
    return 0


@dlq_group.command("replay")
@click.option("--reason", default=None, help="only this reason")
@click.option("--to", default=None, metavar="TOPIC", help="send to TOPIC instead of the source topics")
@click.option("--dry-run", is_flag=True, help="count what would be sent, send nothing")
@pass_settings
def replay_command(settings: Settings, reason: str | None, to: str | None, dry_run: bool) -> int:
    """Re-send the original bytes and key of dead letters (each source message once)."""
    bootstrap, topic, sec = kafka_bootstrap(settings), settings.topic_dead_letters, security_from(settings)
    letters = asyncio.run(read_dead_letters(bootstrap, topic, reason=reason, security=sec))
    todo = unique(letters)
    targets: dict[str, int] = {}
    for x in todo:
        targets[to or x.topic] = targets.get(to or x.topic, 0) + 1
    where = ", ".join(f"{n} to {t}" for t, n in sorted(targets.items())) or "nothing"
    repeats = len(letters) - len(todo)
    found = f"{len(letters)} dead letter(s) on {topic}" + (f" with reason {reason!r}" if reason else "")
    if repeats:
        found += f" ({repeats} repeat(s) of the same source message, sent once)"
    say = err_console.print
    say(found, markup=False, highlight=False)
    if dry_run:
        say(f"dry run: would replay {where}", markup=False, highlight=False)
        return 0
    sent = asyncio.run(replay(bootstrap, todo, to, security=sec))
    say(f"replayed {sent}: {where}", markup=False, highlight=False)
    if sent:
        say(
            "messages that are still bad will be dead-lettered again (as new dead letters); the old ones "
            "stay on the topic, so a second replay sends them again",
            markup=False,
            highlight=False,
        )
    return 0
