"""Producing the simulated stream to the real (Tansu) broker and reading every event back."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.schemas.events import parse_event, to_json
from hanzo.ml.streams.simulation import ProduceStats, Simulator, SimulatorConfig, event_key, produce

pytestmark = pytest.mark.integration


def _kinds(topic_names: dict[str, str]) -> dict[str, str]:
    return {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }


async def _consume_all(bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


async def test_produce_2000_events_and_read_them_all_back(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    # labels within minutes, so the first 2000 events hold every kind
    config = SimulatorConfig(
        seed=13, orders=5000, chargeback_delay_days=(0.001, 0.02), settle_delay_days=(0, 0.01)
    )
    sim = Simulator(config)
    events = list(itertools.islice(sim.events(), 2000))
    progress: list[ProduceStats] = []
    kinds = _kinds(topic_names)
    stats = await produce(
        events, kafka_bootstrap, kinds, on_progress=progress.append, partitions=3, chunk=500
    )
    assert stats.events == 2000
    assert sum(stats.by_kind.values()) == 2000 and set(stats.by_kind) == {"order", "customer_event", "label"}
    assert [p.events for p in progress] == [500, 1000, 1500, 2000, 2000]
    assert progress[-1] == stats and stats.orders == stats.by_kind["order"] > 0
    assert stats.first_event_time == events[0].event_time and stats.last_event_time == events[-1].event_time

    records = await _consume_all(kafka_bootstrap, list(kinds.values()), expected=2000)
    assert len(records) == 2000
    sent = {to_json(e): e for e in events}
    assert sorted(r.value for r in records) == sorted(sent)  # none lost, none duplicated, bytes unchanged
    per_key: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for r in records:
        event = parse_event(r.value)
        assert kinds[event.kind] == r.topic
        assert r.key == event_key(event)
        assert r.key == (event.subject_id if event.kind == "label" else event.customer_id).encode()  # type: ignore[union-attr]
        per_key[(r.topic, r.key)].append(event.event_time)
    # one key lives in one partition, so each entity's events come back in event-time order
    assert all(times == sorted(times) for times in per_key.values())


async def test_rate_limits_wall_clock_speed(kafka_bootstrap: str, topic_names: dict[str, str]) -> None:
    events = list(itertools.islice(Simulator(SimulatorConfig(seed=1, orders=100)).events(), 300))
    started = time.monotonic()
    stats = await produce(events, kafka_bootstrap, _kinds(topic_names), rate=1000.0, partitions=1)
    assert stats.events == 300
    assert (
        time.monotonic() - started >= 0.25
    )  # 300 events at 1000/s: the bucket allows no more than 50 ms early


async def test_no_broker_is_a_clear_error(topic_names: dict[str, str]) -> None:
    with pytest.raises(ServiceUnavailableError, match="127.0.0.1:1"):
        await asyncio.wait_for(produce([], "127.0.0.1:1", _kinds(topic_names), partitions=None), 30)


def test_cli_produces_to_the_configured_broker(
    kafka_bootstrap: str,
    topic_names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hanzo.ml.streams.cli import main

    monkeypatch.setenv("HANZO_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("HANZO_TOPIC_ORDERS", topic_names["orders"])
    monkeypatch.setenv("HANZO_TOPIC_EVENTS", topic_names["events"])
    monkeypatch.setenv("HANZO_TOPIC_LABELS", topic_names["labels"])
    assert main(["simulate", "--orders", "150", "--seed", "3", "--partitions", "2"]) == 0
    assert kafka_bootstrap in capsys.readouterr().out
    orders = asyncio.run(_consume_all(kafka_bootstrap, [topic_names["orders"]], expected=150, timeout=20))
    labels = asyncio.run(_consume_all(kafka_bootstrap, [topic_names["labels"]], expected=150, timeout=20))
    assert len(orders) == 150 and len(labels) == 150
    assert {r.partition for r in orders} <= {0, 1}
