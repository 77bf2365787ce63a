"""A batch consumer that runs inside the Faust app and commits only after the batch's effects are durable.

Faust's own stream machinery costs ~200 µs per event here (ARCHITECTURE.md); the hot path instead reads
with aiokafka ``getmany`` and hands whole batches to a handler, so one Redis round trip and one model
call serve many events. Offsets are committed after the handler returns, so a crash re-delivers the
uncommitted batch and the idempotent effects (event-id dedupe, offset fences) absorb it.

With a :class:`StateGuard` (the worker passes a :class:`streams.rebuild.EpochMarker`), the consumer asks
before each batch whether the state its batches build was lost (Redis came back empty); if so it seeks
every assigned partition back to the beginning, commits those offsets (a crash during the replay resumes
it), renews the guard and replays the topics through the same handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from mode import Service

logger = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]


class StateGuard(Protocol):
    """Tells whether the state built from the consumed topics was lost (see :mod:`streams.rebuild`)."""

    def state_lost(self) -> bool:
        """Whether the state was lost since the last :meth:`renew` (may raise on a service error)."""

    def renew(self) -> None:
        """Record that the state is being rebuilt (called after the partitions were rewound)."""


@dataclass(frozen=True)
class ConsumerOptions:
    """How a :class:`BatchConsumer` reads."""

    bootstrap: str
    group_id: str
    topics: tuple[str, ...]
    batch_max: int = 2000
    batch_timeout_ms: int = 50
    session_timeout_s: float = 6.0
    auto_offset_reset: str = "earliest"
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)  # TLS / SASL (streams.security)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight finishes and commits before partitions move to another worker.
        async with self.owner.batch_lock:
            logger.info("partitions revoked: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))


class BatchConsumer(Service):
    """Consume ``topics`` in a consumer group, in batches, committing after ``handler`` succeeds.

    A handler that raises is retried with backoff on the same batch (the consumer seeks back), so an
    outage of Redis stalls the partition instead of skipping events.
    """

    def __init__(
        self,
        options: ConsumerOptions,
        handler: BatchHandler,
        guard: StateGuard | None = None,
        on_rewind: Callable[[], None] | None = None,
        **kwargs: object,
    ) -> None:
        self.options = options
        self.handler = handler
        self.guard = guard
        self.on_rewind = on_rewind
        self.batch_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.batches = 0
        self.events = 0
        self.failures = 0
        self.rewinds = 0  # replays from the beginning after the guard said the state was lost
        self.last_poll = 0.0  # wall time of the last successful poll (for the WorkerStalled alert)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    async def on_start(self) -> None:
        """Create and start the Kafka consumer (mode calls this)."""
        o = self.options
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=o.bootstrap,
            group_id=o.group_id,
            enable_auto_commit=False,
            auto_offset_reset=o.auto_offset_reset,
            session_timeout_ms=int(o.session_timeout_s * 1000),
            heartbeat_interval_ms=max(100, int(o.session_timeout_s * 1000) // 3),
            max_poll_records=o.batch_max,
            fetch_max_wait_ms=o.batch_timeout_ms,
            **o.client_kwargs,
        )
        self.consumer.subscribe(list(o.topics), listener=_CommitOnRevoke(self))
        await self.consumer.start()

    async def on_started(self) -> None:
        """Start the consume loop."""
        self.add_future(self._consume())

    async def on_stop(self) -> None:
        """Stop consuming after the batch in flight."""
        if self.consumer is not None:
            async with self.batch_lock:
                await self.consumer.stop()

    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        backoff = 0.1
        while not self.should_stop:
            batches = await consumer.getmany(
                timeout_ms=self.options.batch_timeout_ms, max_records=self.options.batch_max
            )
            records = [r for rs in batches.values() for r in rs]
            if not records:
                self.last_poll = time.time()
                continue
            async with self.batch_lock:
                try:
                    if self.guard is not None and self.guard.state_lost():
                        await self._rewind()
                        continue
                    await self.handler(records)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.failures += 1
                    logger.exception("batch of %d failed; retrying after %.1fs", len(records), backoff)
                    for tp, rs in batches.items():
                        consumer.seek(tp, rs[0].offset)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
                self.batches += 1
                self.events += len(records)
                self.last_poll = time.time()

    async def _rewind(self) -> None:
        """Seek every assigned partition to its beginning and commit there, then renew the guard."""
        assert self.consumer is not None
        assert self.guard is not None
        tps = sorted(self.consumer.assignment())
        starts = await self.consumer.beginning_offsets(tps) if tps else {}
        for tp in tps:
            self.consumer.seek(tp, starts[tp])
        if starts:
            # committed before the guard is renewed: a crash from here on restarts the replay
            await self.consumer.commit(dict(starts))
        self.guard.renew()
        self.rewinds += 1
        if self.on_rewind is not None:
            self.on_rewind()
        logger.warning(
            "state lost: replaying %s from the beginning (rebuild %d)",
            sorted(f"{tp.topic}/{tp.partition}@{starts[tp]}" for tp in tps),
            self.rewinds,
        )

    async def lag(self) -> dict[str, int]:
        """Messages behind the end of each assigned topic (summed over its partitions)."""
        if self.consumer is None:
            return {}
        assigned = self.consumer.assignment()
        if not assigned:
            return {}
        ends = await self.consumer.end_offsets(list(assigned))
        out: dict[str, int] = {}
        for tp in assigned:
            pos = await self.consumer.position(tp)
            out[tp.topic] = out.get(tp.topic, 0) + max(0, ends[tp] - pos)
        return out
