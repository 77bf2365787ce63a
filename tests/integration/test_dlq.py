"""`hanzo-ml dlq`: dead letters on a real broker are listed, filtered and replayed with their bytes."""

from __future__ import annotations

import base64
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.streams.cli import run as _run_cli
from hanzo.ml.streams.dlq import read_dead_letters, replay
from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.topics import ensure_topics

pytestmark = pytest.mark.integration

BAD_BYTES = b"\xff\xfe not utf-8"


def _letters(t: dict[str, str]) -> list[tuple[DeadLetter, int]]:
    """Dead letters with explicit timestamps (ms), oldest first; the last one repeats the first's source."""
    orders, events = t["orders"], t["events"]
    first = DeadLetter("schema", "order: field 'total': missing", orders, 0, 10, b"c1", b'{"order_id": "o1"}')
    return [
        (first, 1_700_000_000_000),
        (
            DeadLetter("malformed_json", "malformed JSON: Expecting value", events, 0, 3, None, BAD_BYTES),
            1_700_000_001_000,
        ),
        (
            DeadLetter("schema", "order: field 'currency': bad", orders, 1, 11, b"c2", b'{"order_id": "o2"}'),
            1_700_000_002_000,
        ),
        (first, 1_700_000_003_000),  # the same source message dead-lettered twice
    ]


async def _write(bootstrap: str, topic_names: dict[str, str]) -> list[tuple[DeadLetter, int]]:
    t = topic_names
    await ensure_topics(bootstrap, {t["dead-letters"]: 2, t["orders"]: 2, t["events"]: 1, t["scores"]: 1})
    letters = _letters(t)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, (letter, stamp) in enumerate(letters):
            doc = json.loads(letter.to_json())
            doc["timestamp_ms"] = stamp
            # spread over both partitions: the reader must merge them in time order
            await producer.send_and_wait(t["dead-letters"], json.dumps(doc).encode(), partition=i % 2)
        await producer.send_and_wait(t["dead-letters"], b"this is not a dead letter", partition=0)
    finally:
        await producer.stop()
    return letters


async def _read_topic(bootstrap: str, topic: str, expect: int) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) on ``topic``: read until ``expect`` arrived, then one more poll for extras.

    Not up to ``end_offsets``: Tansu answers it with the base offset of the last record batch, so a
    batch of replayed records would be missed.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) if topic in await consumer.topics() else None
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 30
        while len(out) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [(r.key, r.value) for r in records]
        for records in (await consumer.getmany(timeout_ms=300)).values():  # anything beyond what is expected
            out += [(r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def test_list_filter_and_replay_to_another_topic(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    written = await _write(kafka_bootstrap, topic_names)
    dlq = topic_names["dead-letters"]

    letters = await read_dead_letters(kafka_bootstrap, dlq)
    assert [x.timestamp_ms for x in letters] == [stamp for _, stamp in written]  # junk record skipped
    assert [(x.reason, x.topic, x.partition, x.offset, x.key, x.value) for x in letters] == [
        (d.reason, d.topic, d.partition, d.offset, d.key, d.value) for d, _ in written
    ]
    assert {x.dlq_partition for x in letters} == {0, 1}

    schema = await read_dead_letters(kafka_bootstrap, dlq, reason="schema")
    assert [x.offset for x in schema] == [10, 11, 10]
    newest = await read_dead_letters(kafka_bootstrap, dlq, reason="schema", limit=1)
    assert [(x.offset, x.timestamp_ms) for x in newest] == [(10, 1_700_000_003_000)]
    assert await read_dead_letters(kafka_bootstrap, dlq, reason="timestamp") == []

    target = topic_names["scores"]
    assert await replay(kafka_bootstrap, schema, to=target) == 2  # the repeat is sent once
    got = await _read_topic(kafka_bootstrap, target, 2)
    assert sorted(got, key=repr) == [(b"c1", b'{"order_id": "o1"}'), (b"c2", b'{"order_id": "o2"}')]
    assert await _read_topic(kafka_bootstrap, topic_names["orders"], 0) == []  # nothing went to the source


async def test_replay_to_source_topics_keeps_bytes_and_keys(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    await _write(kafka_bootstrap, topic_names)
    letters = await read_dead_letters(kafka_bootstrap, topic_names["dead-letters"])
    assert await replay(kafka_bootstrap, letters) == 3
    orders = await _read_topic(kafka_bootstrap, topic_names["orders"], 2)
    assert sorted(orders, key=repr) == [(b"c1", b'{"order_id": "o1"}'), (b"c2", b'{"order_id": "o2"}')]
    assert await _read_topic(kafka_bootstrap, topic_names["events"], 1) == [(None, BAD_BYTES)]


async def test_missing_topic_is_empty_and_dead_broker_is_named(
    topic_names: dict[str, str], kafka_bootstrap: str
):
    assert await read_dead_letters(kafka_bootstrap, topic_names["dead-letters"]) == []
    assert await replay(kafka_bootstrap, []) == 0
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailableError, match=f"no Kafka broker answered at {dead}"):
        await read_dead_letters(dead, "dead-letters", timeout=3.0)


def test_cli_list_json_dry_run_and_replay(
    kafka_bootstrap: str,
    topic_names: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    monkeypatch.setenv("COLUMNS", "250")  # rich: a table row per letter, no folding

    asyncio.run(_write(kafka_bootstrap, topic_names))
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_dead_letters=topic_names["dead-letters"])

    assert _run_cli(["dlq", "list", "--json", "--reason", "malformed_json"], settings) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert (doc["topic"], doc["offset"], doc["key_b64"]) == (topic_names["events"], 3, None)
    assert base64.b64decode(doc["value_b64"]) == BAD_BYTES

    assert _run_cli(["dlq", "list", "--limit", "2"], settings) == 0
    out = capsys.readouterr().out
    assert "2 dead letter(s)" in out and "2023-11-14 22:13:22" in out and "not UTF-8" not in out
    assert f"{topic_names['orders']}/0@10" in out and "order: field 'currency'" in out

    target = topic_names["scores"]
    assert _run_cli(["dlq", "replay", "--to", target, "--dry-run"], settings) == 0
    err = capsys.readouterr().err
    assert "4 dead letter(s)" in err and "1 repeat(s)" in err and f"would replay 3 to {target}" in err
    assert asyncio.run(_read_topic(kafka_bootstrap, target, 0)) == []

    assert _run_cli(["dlq", "replay", "--reason", "malformed_json"], settings) == 0
    err = capsys.readouterr().err
    assert f"replayed 1: 1 to {topic_names['events']}" in err and "dead-lettered again" in err
    assert asyncio.run(_read_topic(kafka_bootstrap, topic_names["events"], 1)) == [(None, BAD_BYTES)]
