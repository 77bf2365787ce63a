"""A batch consumer that runs inside the Faust app and commits only after the batch's effects are durable.

Faust's own stream machinery costs ~200 µs per event here (ARCHITECTURE.md); the hot path instead reads
with aiokafka ``getmany`` and hands whole batches to a handler, so one Redis round trip and one model
call serve many events. The records of the assigned partitions are handed out oldest first, by record
timestamp (:mod:`streams.partition_merge`): a backlog's partitions advance together in event time instead of
one partition's run at a time. Offsets are committed after the handler returns, so a crash re-delivers the
uncommitted batch and the idempotent effects (event-id dedupe, offset fences) absorb it.

With a :class:`StateGuard` (the worker passes a :class:`streams.rebuild.EpochMarker`), the consumer asks
before each batch whether the state its batches build was lost (Redis came back empty); if so it seeks
every assigned partition back to the beginning, commits those offsets (a crash during the replay resumes
it), renews the guard and replays the topics through the same handler. While no records arrive it asks
every ``probe_interval_s`` too: a Redis that came back empty while the stream was idle is rebuilt at once,
not at the next event, and a Redis that is down while the stream is idle is reported (``on_error`` of the
guard) and its return too (``on_idle_ok``).

With a :class:`~streams.broker_epoch.LogLedger` and :class:`BrokerHooks`, it also survives the broker going
away: a watcher probes the broker's metadata every ``probe_interval_s`` and reports loss and return
(``/health`` degraded, ``hanzo_broker_errors_total``); polls and commits that fail are counted and retried.
After each batch the ledger records the next offset per partition (before the commit). When the broker
answers again, and at every partition assignment, the consumer recreates its topics and compares the
ledger with the broker (:func:`streams.broker_epoch.log_went_back`): a broker that came back empty
(Tansu keeps topics in memory) starts a new broker epoch: the fences of the old logs are cleared, every
assigned partition is read from the beginning of the new log, and ``BrokerHooks.new_epoch`` tells the
learner. A persistent broker keeps its logs and the group's offsets, so the consumer resumes from them.
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
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError
from mode import Service

from hanzo.ml.streams.broker_epoch import BrokerHooks, LogLedger, log_went_back, tp_key
from hanzo.ml.streams.offsets import broker_ends, fetched_end
from hanzo.ml.streams.partition_merge import PartitionMerger, by_partition

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
    probe_interval_s: float = 1.0  # how often the broker's metadata is probed
    request_timeout_s: float = 10.0  # most time one offsets / metadata call may take
    # most time a batch waits for a partition that is behind (records on the broker) but has none
    # fetched, before newer records go out without it (Kafka Streams' max.task.idle.ms); see
    # streams.partition_merge
    align_wait_ms: int = 50


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight finishes and commits before partitions move to another worker.
        async with self.owner.batch_lock:
            logger.info("partitions revoked: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in revoked))
            self.owner.merger.drop()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))
        # the new assignment reads from the committed offsets: what was buffered would come twice
        self.owner.merger.drop()
        # the group may have been re-formed by a broker that lost everything: check before the next batch
        self.owner.check_pending = True


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
        ledger: LogLedger | None = None,
        on_idle_ok: Callable[[], None] | None = None,
        hooks: BrokerHooks | None = None,
        **kwargs: object,
    ) -> None:
        self.options = options
        self.handler = handler
        self.guard = guard
        self.on_rewind = on_rewind
        self.on_idle_ok = on_idle_ok  # an idle check of the guard succeeded (its service answers)
        self._next_idle_check = 0.0  # monotonic time of the next guard check while no records arrive
        self.ledger = ledger
        self.hooks = hooks or BrokerHooks()
        self.broker_ok = True
        self.check_pending = ledger is not None  # compare the ledger with the broker before a batch
        # the broker was unreachable and came back: only then can missing group offsets mean a lost log (a
        # rebalance can hand over a partition whose ledger entry is newer than its first commit)
        self.outage_seen = False
        self.epochs = 0  # new broker epochs started by this consumer
        self.batch_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.batches = 0
        self.events = 0
        self.failures = 0
        self.rewinds = 0  # replays from the beginning after the guard said the state was lost
        self.last_poll = 0.0  # wall time of the last successful poll (for the WorkerStalled alert)
        self.merger = PartitionMerger()  # records taken from the consumer, handed out in timestamp order
        super().__init__(**kwargs)  # type: ignore[arg-type]

    async def on_start(self) -> None:
        """Create and start the Kafka consumer (mode calls this)."""
        self.consumer = self.make_consumer()
        self.consumer.subscribe(list(self.options.topics), listener=_CommitOnRevoke(self))
        await self.consumer.start()

    def make_consumer(self) -> AIOKafkaConsumer:
        """The (unstarted) group consumer, with the TLS / SASL options (create it in an event loop)."""
        o = self.options
        return AIOKafkaConsumer(
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

    async def on_started(self) -> None:
        """Start the consume loop and the broker watcher."""
        self.add_future(self._consume())
        self.add_future(self._watch())

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
            try:
                records = await self._poll()
            except ConsumerStoppedError:
                if self.should_stop:
                    return
                raise
            except KafkaError:
                self._broker_error("poll")
                logger.warning("poll failed; retrying after %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            batches = by_partition(records)
            if self.check_pending and self.ledger is not None:
                async with self.batch_lock:
                    checked = await self._check_log(batches)
                if checked is None:  # the broker did not answer: keep the batch for later
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if checked:  # a new broker epoch: the batch came from a stale position
                    continue
            if not records:
                self.last_poll = time.time()
                await self._idle_check()
                continue
            async with self.batch_lock:
                try:
                    if self.guard is not None and self.guard.state_lost():
                        await self._rewind()
                        continue
                    await self.handler(records)
                    if self.ledger is not None:
                        self.ledger.record(
                            {tp_key(tp.topic, tp.partition): rs[-1].offset + 1 for tp, rs in batches.items()}
                        )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.failures += 1
                    logger.exception("batch of %d failed; retrying after %.1fs", len(records), backoff)
                    self._unread(batches)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                self.batches += 1
                self.events += len(records)
                self.last_poll = time.time()
                try:
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
                except KafkaError as exc:
                    # the effects are durable and idempotent: a re-delivery of this batch changes nothing
                    self._broker_error("commit")
                    logger.warning(
                        "commit failed (%s: %s); the batch may be re-delivered", type(exc).__name__, exc
                    )

    async def _poll(self) -> list[ConsumerRecord]:
        """The next batch: the buffered and newly fetched records, oldest first across partitions.

        With nothing buffered it waits up to ``batch_timeout_ms`` for records, as a plain ``getmany``.
        Partitions whose buffer ran dry are topped up from what the consumer has already fetched; one that
        is behind (more on the broker) and has nothing fetched yet is waited for up to ``align_wait_ms``.
        """
        assert self.consumer is not None
        consumer, o, merger = self.consumer, self.options, self.merger
        merger.drop(keep=consumer.assignment())
        if not merger.buffered():
            merger.add(await consumer.getmany(timeout_ms=o.batch_timeout_ms, max_records=o.batch_max))
        # every await may have let a rebalance through: the assignment is read again after each
        assigned = consumer.assignment()
        low = max(1, o.batch_max // max(1, len(assigned)))
        for tp in assigned:
            if merger.buffered(tp) < low:
                merger.add(await consumer.getmany(tp, timeout_ms=0, max_records=o.batch_max))
        behind = {tp for tp in consumer.assignment() if await self._behind(tp)}
        starved = [tp for tp in behind if not merger.buffered(tp)]
        if starved and merger.buffered():
            deadline = time.monotonic() + o.align_wait_ms / 1000
            while starved and (left := deadline - time.monotonic()) > 0:
                wait_ms = int(left * 1000) + 1
                merger.add(await consumer.getmany(*starved, timeout_ms=wait_ms, max_records=o.batch_max))
                starved = [tp for tp in starved if not merger.buffered(tp)]
            behind.difference_update(starved)  # idle past the wait: its records may come late
        merger.drop(keep=consumer.assignment())
        return merger.take(o.batch_max, behind)

    async def _behind(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` may have records on the broker that the consumer has not handed out yet.

        Not known before its first fetch response (no high watermark yet): counted as behind, so the first
        batches wait for every partition's first records (up to ``align_wait_ms``). A partition revoked
        meanwhile is not behind.
        """
        assert self.consumer is not None
        if tp not in self.consumer.assignment():
            return False
        high = self.consumer.highwater(tp)
        try:
            return high is None or high > await self.consumer.position(tp)
        except IllegalStateError:  # revoked while the position was awaited
            return False

    def _unread(self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        """Give back a batch that was not handled and everything buffered: seek to their first offsets."""
        assert self.consumer is not None
        firsts = self.merger.first_offsets()
        firsts.update({tp: rs[0].offset for tp, rs in batches.items() if rs})
        self.merger.drop()
        for tp, offset in firsts.items():
            try:
                self.consumer.seek(tp, offset)
            except Exception:  # the partition was revoked meanwhile; its new owner reads it
                logger.debug("seek %s failed", tp, exc_info=True)

    def _broker_error(self, op: str) -> None:
        if self.hooks.error is not None:
            self.hooks.error(op)

    def _set_broker(self, ok: bool) -> None:
        if ok != self.broker_ok:
            logger.warning("the broker at %s is %s", self.options.bootstrap, "back" if ok else "unreachable")
        self.broker_ok = ok
        if self.hooks.state is not None:
            self.hooks.state(ok)

    async def _watch(self) -> None:
        """Probe the broker's metadata; on its return, recreate the topics and check the logs."""
        assert self.consumer is not None
        o = self.options
        while not self.should_stop:
            await asyncio.sleep(o.probe_interval_s)
            try:
                await asyncio.wait_for(self.consumer.topics(), o.request_timeout_s)
            except (KafkaError, OSError, TimeoutError):
                self._broker_error("metadata")
                if self.broker_ok:
                    self._set_broker(False)
                continue
            if not self.broker_ok:
                self._set_broker(True)
                self.check_pending = self.ledger is not None
                self.outage_seen = True
                try:
                    if self.hooks.recreate is not None:
                        await self.hooks.recreate()
                    if self.hooks.back is not None:
                        await self.hooks.back()
                except Exception:
                    self._broker_error("recreate")
                    logger.warning("recreating the topics failed; retrying", exc_info=True)
                    self._set_broker(False)

    async def _check_log(self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> bool | None:
        """Compare the ledger with the broker; start a new broker epoch when a log went backwards.

        Returns True when an epoch started (``batches`` is dropped), False when the logs are intact,
        None when the broker did not answer (``batches`` is sought back, the check stays pending).
        """
        assert self.consumer is not None and self.ledger is not None
        consumer = self.consumer
        topics = set(self.options.topics)
        try:
            recorded = {k: v for k, v in self.ledger.recorded().items() if k.rsplit("/", 1)[0] in topics}
            tps, gone = {}, {}
            for key in recorded:
                topic, part = key.rsplit("/", 1)
                parts = consumer.partitions_for_topic(topic)
                if parts is None:  # no metadata for the topic yet: judge it at the next check
                    self._unread(batches)
                    return None
                if int(part) in parts:
                    tps[key] = TopicPartition(topic, int(part))
                else:
                    gone[key] = 0  # the partition no longer exists: its log is empty
            async with asyncio.timeout(self.options.request_timeout_s):
                found = await consumer.end_offsets(list(tps.values())) if tps else {}
                committed = (
                    {key: await consumer.committed(tp) for key, tp in tps.items()} if self.outage_seen else {}
                )
            ends = {**gone, **{k: found[tp] for k, tp in tps.items()}}
            low = {k: tp for k, tp in tps.items() if ends[k] < recorded[k]}
            if low:  # Tansu reports low ends (streams.offsets): ask a fetch before calling a log shorter
                o = self.options
                held = await broker_ends(o.bootstrap, list(low.values()), o.client_kwargs)
                ends.update({k: held[tp] for k, tp in low.items()})
        except (KafkaError, OSError, TimeoutError):
            self._broker_error("offsets")
            logger.warning("could not compare the offsets with the broker; retrying", exc_info=True)
            self._unread(batches)
            return None
        except Exception:  # Redis: the guard and the handler report it; check again later
            logger.warning("could not read the offset ledger; retrying", exc_info=True)
            self._unread(batches)
            return None
        stale = log_went_back(recorded, ends, committed)
        self.check_pending = self.outage_seen = False
        if not stale:
            return False
        await self._new_epoch(stale, recorded, ends)
        return True

    async def _new_epoch(
        self, stale: list[str], recorded: Mapping[str, int], ends: Mapping[str, int]
    ) -> None:
        assert self.consumer is not None and self.ledger is not None
        logger.warning(
            "the broker's logs went backwards (processed -> end: %s): starting a new broker epoch",
            ", ".join(f"{k} {recorded[k]}->{ends[k]}" for k in stale),
        )
        await asyncio.to_thread(self.ledger.new_epoch, self.options.topics)
        self.merger.drop()
        tps = sorted(self.consumer.assignment())
        starts = await self.consumer.beginning_offsets(tps) if tps else {}
        for tp in tps:
            self.consumer.seek(tp, starts[tp])
        if starts:
            try:
                await self.consumer.commit(dict(starts))
            except KafkaError:
                self._broker_error("commit")
        self.epochs += 1
        for attempt in range(10):  # the learner must rewind too, or it skips the new labels
            try:
                if self.hooks.new_epoch is not None:
                    await self.hooks.new_epoch()
                break
            except Exception:
                self._broker_error("offsets")
                logger.warning(
                    "new broker epoch: the learner did not rewind (try %d)", attempt + 1, exc_info=True
                )
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    async def _idle_check(self) -> None:
        """Ask the guard while the stream is idle (every ``probe_interval_s``, once partitions are assigned).

        Before a batch is not enough: a Redis that came back empty after the last event would stay empty
        (no rebuild, every feature missing) until the next event arrives. Without an assignment nothing
        is checked: a rewind then would renew the guard without replaying anything.
        """
        assert self.consumer is not None
        if self.guard is None or time.monotonic() < self._next_idle_check or not self.consumer.assignment():
            return
        self._next_idle_check = time.monotonic() + self.options.probe_interval_s
        async with self.batch_lock:
            try:
                if self.guard.state_lost():
                    await self._rewind()
                elif self.on_idle_ok is not None:
                    self.on_idle_ok()
            except asyncio.CancelledError:
                raise
            except Exception:  # the guard reported it (on_error); check again at the next interval
                logger.warning("idle state check failed; retrying in %.1fs", self.options.probe_interval_s)

    async def _rewind(self) -> None:
        """Seek every assigned partition to its beginning and commit there, then renew the guard."""
        assert self.consumer is not None
        assert self.guard is not None
        self.merger.drop()
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
            behind = max(0, fetched_end(self.consumer, tp, ends[tp]) - pos) + self.merger.buffered(tp)
            out[tp.topic] = out.get(tp.topic, 0) + behind
        return out
