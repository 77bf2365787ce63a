"""End offsets that hold on the embedded broker too.

Tansu answers ``ListOffsets`` (latest), which aiokafka's ``end_offsets`` sends, with the base offset of the
last record batch plus one: a partition whose last produce request carried 200 records reports an end 199
below its last offset + 1. The high watermark of a ``Fetch`` response is right. So a reader that stops at
the end stops at the high watermark of what it fetched (:func:`fetched_end`), and a check made before any
fetch, at an assignment, asks a short-lived consumer (:func:`broker_ends`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

#: Most time :func:`broker_ends` waits for a fetch response of each partition.
PROBE_TIMEOUT_S = 5.0


def fetched_end(consumer: AIOKafkaConsumer, tp: TopicPartition, reported: int) -> int:
    """The end of ``tp``: the high watermark ``consumer`` last fetched, or ``reported`` when higher."""
    return max(reported, consumer.highwater(tp) or 0)


async def broker_ends(
    bootstrap: str,
    tps: Sequence[TopicPartition],
    client_kwargs: Mapping[str, Any] | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> dict[TopicPartition, int]:
    """The end offset of each partition (its last offset + 1; 0 when empty), from a fetch.

    A consumer outside any group fetches each partition from its reported end, so the answer costs one
    fetch of at most the last record batch. Raises ``TimeoutError`` when a partition gives no fetch
    response within ``timeout``.
    """
    if not tps:
        return {}
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **(client_kwargs or {})
    )
    await probe.start()
    try:
        probe.assign(list(tps))
        reported = await probe.end_offsets(list(tps))
        for tp in tps:
            probe.seek(tp, reported[tp])
        deadline = time.monotonic() + timeout
        while any(probe.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                msg = f"no fetch response for {sorted(map(str, tps))} within {timeout:.0f}s"
                raise TimeoutError(msg)
            await probe.getmany(timeout_ms=200, max_records=1)
            await asyncio.sleep(0)
        return {tp: fetched_end(probe, tp, reported[tp]) for tp in tps}
    finally:
        await probe.stop()
