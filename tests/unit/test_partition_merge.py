"""PartitionMerger: several partitions' records handed out oldest first, never ahead of one behind."""

from __future__ import annotations

import random

from aiokafka import ConsumerRecord, TopicPartition

from hanzo.ml.streams.partition_merge import PartitionMerger, by_partition


def rec(p: int, offset: int, ts: int) -> ConsumerRecord:
    return ConsumerRecord("orders", p, offset, ts, 0, None, b"", None, 0, 0, [])


TP = [TopicPartition("orders", p) for p in range(4)]


def test_a_partition_behind_holds_back_what_is_newer_than_its_last_buffered_record() -> None:
    m = PartitionMerger()
    m.add({TP[0]: [rec(0, i, 10 * i) for i in range(10)], TP[1]: [rec(1, 0, 5), rec(1, 1, 25)]})
    out = m.take(100, behind={TP[1]})
    assert [(r.partition, r.timestamp) for r in out] == [(0, 0), (1, 5), (0, 10), (0, 20), (1, 25)]
    assert m.buffered(TP[0]) == 7
    # once partition 1 has nothing more on the broker, partition 0 goes out whole
    assert [r.timestamp for r in m.take(100, behind=set())] == [30, 40, 50, 60, 70, 80, 90]


def test_at_most_max_records_and_each_partition_in_offset_order() -> None:
    m = PartitionMerger()
    m.add({TP[0]: [rec(0, i, i) for i in range(50)], TP[1]: [rec(1, i, i) for i in range(50)]})
    first = m.take(30, behind=set(TP[:2]))
    second = m.take(1000, behind=set())
    assert len(first) == 30
    merged = by_partition(first + second)
    assert {tp.partition: [r.offset for r in rs] for tp, rs in merged.items()} == {
        0: list(range(50)),
        1: list(range(50)),
    }


def test_a_partition_whose_timestamps_go_backwards_does_not_stall() -> None:
    m = PartitionMerger()
    m.add({TP[0]: [rec(0, 0, 100), rec(0, 1, 50)], TP[1]: [rec(1, 0, 200)]})
    # the horizon (50) is below every head: the oldest head still goes out, then what the horizon allows
    out = m.take(10, behind={TP[0], TP[1]})
    assert [(r.partition, r.offset) for r in out] == [(0, 0), (0, 1)]
    assert m.buffered() == 1


def test_random_backlog_is_handed_out_sorted() -> None:
    rng = random.Random(3)
    stamps = sorted(rng.randrange(10_000) for _ in range(2_000))
    parts: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in TP}
    for ts in stamps:
        tp = rng.choice(TP)
        parts[tp].append(rec(tp.partition, len(parts[tp]), ts))
    m, out, cursor = PartitionMerger(), [], {tp: 0 for tp in TP}
    while len(out) < len(stamps):
        for tp in TP:  # the consumer tops up a partition in chunks of random size
            if not m.buffered(tp):
                n = rng.randint(1, 300)
                m.add({tp: parts[tp][cursor[tp] : cursor[tp] + n]})
                cursor[tp] += n
        behind = {tp for tp in TP if cursor[tp] < len(parts[tp])}
        out += m.take(rng.randint(1, 500), behind)
    assert [r.timestamp for r in out] == stamps
    assert m.first_offsets() == {}
