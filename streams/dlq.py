"""The dead-letter topic, read and replayed: ``hanzo-ml dlq list`` and ``hanzo-ml dlq replay``.

Dead letters are the JSON documents written by :mod:`streams.dead_letters`. :func:`read_dead_letters` reads
the topic from the beginning up to its end at the time of the call (no consumer group, nothing committed);
:func:`replay` re-publishes each letter's original key and bytes to its source topic (or another one).

Replay gives no exactly-once guarantee: a replayed message gets a new offset, and when it is still bad the
worker dead-letters it again, as a new dead letter. Within one call each source message
(topic, partition, offset) is sent at most once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.streams.security import SecuritySettings, kafka_client_kwargs, security_from

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredDeadLetter(DeadLetter):
    """A :class:`~streams.dead_letters.DeadLetter` read back from the dead-letter topic, with where it sits.

    Examples
    --------
    >>> raw = DeadLetter("schema", "order: field 'total'", "orders", 1, 42, b"c1", b"{}").to_json()
    >>> letter = StoredDeadLetter.from_record(raw, dlq_partition=0, dlq_offset=7, record_timestamp_ms=5)
    >>> letter.source, letter.value, letter.dlq_offset
    ('orders/1@42', b'{}', 7)
    """

    timestamp_ms: int | None = None
    dlq_partition: int = -1
    dlq_offset: int = -1

    @property
    def source(self) -> str:
        """``topic/partition@offset`` of the original message."""
        return f"{self.topic}/{self.partition}@{self.offset}"

    @property
    def source_id(self) -> tuple[str, int, int]:
        """``(topic, partition, offset)``: identifies the original message."""
        return (self.topic, self.partition, self.offset)

    @classmethod
    def from_record(
        cls, raw: bytes, *, dlq_partition: int, dlq_offset: int, record_timestamp_ms: int | None = None
    ) -> StoredDeadLetter:
        """Parse one dead-letter record; its own ``timestamp_ms`` wins over the record's timestamp."""
        base = DeadLetter.from_json(raw)
        stamp = json.loads(raw).get("timestamp_ms")
        return cls(
            reason=base.reason,
            error=base.error,
            topic=base.topic,
            partition=base.partition,
            offset=base.offset,
            key=base.key,
            value=base.value,
            timestamp_ms=stamp if isinstance(stamp, int) else record_timestamp_ms,
            dlq_partition=dlq_partition,
            dlq_offset=dlq_offset,
        )


def _unavailable(bootstrap: str, exc: BaseException, timeout: float) -> ServiceUnavailableError:
    msg = (
        f"no Kafka broker answered at {bootstrap} in time (limit {timeout}s; {type(exc).__name__}: {exc}); "
        "start one with `hanzo-ml up` or fix HANZO_KAFKA_BOOTSTRAP and the HANZO_KAFKA_SECURITY_* settings"
    )
    return ServiceUnavailableError(msg)


async def read_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    security: SecuritySettings | None = None,
    timeout: float = 30.0,
) -> list[StoredDeadLetter]:
    """Read the dead letters on ``topic``, oldest first.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the broker.
    topic
        The dead-letter topic.
    reason
        Keep only letters with this reason (see :data:`streams.dead_letters.REASONS`).
    limit
        Keep only the newest ``limit`` letters (after filtering).
    security
        Kafka security options (PLAINTEXT when None).
    timeout
        Seconds allowed for the whole read.

    Returns
    -------
    list[StoredDeadLetter]
        Every letter up to the topic's end offsets at the time of the call, ordered by time, then
        partition and offset. A topic that does not exist yields an empty list. Records that are not dead
        letters are logged and skipped.
    """
    kwargs = kafka_client_kwargs(security or SecuritySettings())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
        **kwargs,
    )
    letters: list[StoredDeadLetter] = []
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            ids = consumer.partitions_for_topic(topic) if topic in await consumer.topics() else None
            if not ids:
                logger.info(
                    "dead-letter topic %r does not exist at %s: nothing dead-lettered", topic, bootstrap
                )
                return []
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for tp, records in batch.items():
                    for rec in records:
                        if rec.offset < ends[tp]:
                            letters.extend(_parse(rec.value, tp, rec.offset, rec.timestamp))
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unavailable(bootstrap, exc, timeout) from None
    finally:
        await consumer.stop()
    if reason is not None:
        letters = [x for x in letters if x.reason == reason]
    letters.sort(key=lambda x: (x.timestamp_ms or 0, x.dlq_partition, x.dlq_offset))
    if limit is not None:
        letters = letters[-limit:] if limit > 0 else []
    return letters


def _parse(raw: bytes | None, tp: TopicPartition, offset: int, stamp: int | None) -> list[StoredDeadLetter]:
    where = f"{tp.topic}/{tp.partition}@{offset}"
    if raw is None:
        logger.warning("%s is empty, not a dead letter; skipped", where)
        return []
    try:
        letter = StoredDeadLetter.from_record(
            raw, dlq_partition=tp.partition, dlq_offset=offset, record_timestamp_ms=stamp
        )
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is not a dead letter (%s: %s); skipped", where, type(exc).__name__, exc)
        return []
    return [letter]


def unique(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Drop repeats of the same source message (topic, partition, offset), keeping the first.

    Examples
    --------
    >>> a = DeadLetter("schema", "e", "orders", 0, 5, None, b"x")
    >>> b = DeadLetter("schema", "e", "orders", 0, 6, None, b"y")
    >>> [x.offset for x in unique([a, b, a])]
    [5, 6]
    """
    seen: set[tuple[str, int, int]] = set()
    kept: list[DeadLetter] = []
    for letter in letters:
        ident = (letter.topic, letter.partition, letter.offset)
        if ident not in seen:
            seen.add(ident)
            kept.append(letter)
    return kept


async def replay(
    bootstrap: str,
    letters: Sequence[DeadLetter],
    to: str | None = None,
    *,
    security: SecuritySettings | None = None,
    timeout: float = 30.0,
) -> int:
    """Publish the original key and bytes of each letter to its source topic (or to ``to``).

    Each source message (topic, partition, offset) is sent at most once per call; the broker acknowledges
    every send (``acks="all"``) before this returns. The partition is chosen by the key as usual.

    Returns
    -------
    int
        How many messages were sent.
    """
    todo = unique(letters)
    if not todo:
        return 0
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=int(timeout * 1000),
        **kafka_client_kwargs(security or SecuritySettings()),
    )
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
            futures = [await producer.send(to or x.topic, value=x.value, key=x.key) for x in todo]
            await asyncio.gather(*futures)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unavailable(bootstrap, exc, timeout) from None
    finally:
        await producer.stop()
    logger.info("replayed %d dead letters%s", len(todo), f" to {to}" if to else "")
    return len(todo)


# -- CLI ---------------------------------------------------------------------------------------------------


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from hanzo.ml.streams.embedded import resolve_services

    return resolve_services(settings).kafka_bootstrap


def _preview(data: bytes | None, width: int = 60) -> str:
    r"""A one-line preview of a payload.

    Examples
    --------
    >>> _preview(b'{"a": 1}'), _preview(b"\xff\x00"), _preview(None)
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


def _as_json(letter: StoredDeadLetter) -> dict[str, Any]:
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


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    bootstrap, topic = _bootstrap(settings), settings.topic_dead_letters
    letters = asyncio.run(
        read_dead_letters(
            bootstrap, topic, reason=args.reason, limit=args.limit, security=security_from(settings)
        )
    )
    if args.json:
        sys.stdout.write(json.dumps([_as_json(x) for x in letters], indent=2) + "\n")
        return 0
    table = Table(title=f"dead letters on {topic} at {bootstrap}")
    for column in ("time (UTC)", "reason", "source"):
        table.add_column(column, no_wrap=True)
    for column in ("error", "value"):
        table.add_column(column, overflow="fold")
    for x in letters:
        table.add_row(_when(x.timestamp_ms), x.reason, x.source, x.error[:120], _preview(x.value))
    console = Console()
    console.print(table)
    shown = f"{len(letters)} dead letter(s)" + (f" with reason {args.reason!r}" if args.reason else "")
    console.print(shown, markup=False, highlight=False)
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    bootstrap, topic, sec = _bootstrap(settings), settings.topic_dead_letters, security_from(settings)
    letters = asyncio.run(read_dead_letters(bootstrap, topic, reason=args.reason, security=sec))
    todo = unique(letters)
    targets: dict[str, int] = {}
    for x in todo:
        targets[args.to or x.topic] = targets.get(args.to or x.topic, 0) + 1
    where = ", ".join(f"{n} to {t}" for t, n in sorted(targets.items())) or "nothing"
    repeats = len(letters) - len(todo)
    found = f"{len(letters)} dead letter(s) on {topic}" + (
        f" with reason {args.reason!r}" if args.reason else ""
    )
    if repeats:
        found += f" ({repeats} repeat(s) of the same source message, sent once)"
    console.print(found, markup=False, highlight=False)
    if args.dry_run:
        console.print(f"dry run: would replay {where}", markup=False, highlight=False)
        return 0
    sent = asyncio.run(replay(bootstrap, todo, args.to, security=sec))
    console.print(f"replayed {sent}: {where}", markup=False, highlight=False)
    if sent:
        console.print(
            "messages that are still bad will be dead-lettered again (as new dead letters); the old ones "
            "stay on the topic, so a second replay sends them again",
            markup=False,
            highlight=False,
        )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the verb ``dlq`` with ``list`` and ``replay``."""
    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter topic")
    verbs = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    p = verbs.add_parser("list", help="show dead letters (time, reason, source, error, value)")
    p.add_argument("--limit", type=int, default=None, help="show only the newest N")
    p.add_argument("--reason", default=None, help="only this reason (e.g. schema, malformed_json)")
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.set_defaults(func=_cmd_list)
    p = verbs.add_parser("replay", help="re-send the original bytes and key of dead letters")
    p.add_argument("--reason", default=None, help="only this reason")
    p.add_argument("--to", default=None, metavar="TOPIC", help="send to TOPIC instead of the source topics")
    p.add_argument("--dry-run", action="store_true", help="count what would be sent, send nothing")
    p.set_defaults(func=_cmd_replay)
