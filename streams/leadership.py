"""One writer per model across a group of workers: a lease in Redis decides which worker learns.

Every worker scores its share of the orders; only the holder of the learner lease (the Redis key
``<prefix>hanzo:learner-lease``, holding the worker's id) consumes the labels, learns, snapshots and runs
the promotion gate. The others score with the latest snapshot of each model and load a newer one when
the registry has it. A worker with ``role: score`` (``hanzo-ml worker --role score``) never takes the
lease: it only scores and follows the registry. A ``role: learn`` worker consumes no orders: it takes the
lease and learns, joining labels against the watermark the scorers publish (:mod:`streams.watermark`).

The lease is taken with ``SET NX PX`` (a worker whose own id is still in the key, e.g. restarted after
``kill -9`` with the same id, takes it back at once), renewed every ``renew_every_s`` by its holder with
a compare-and-renew script, and released on a clean shutdown with a compare-and-delete script. A holder
whose renewal fails (Redis unreachable, a pause) stops learning; besides, it learns no batch and writes
no snapshot once ``ttl - renew_every_s`` has passed since the start of its last successful renewal (the
fence), so it has stopped before the key can expire and another worker take it. A new holder restores
each learner from the registry's latest snapshot (state, label offsets, learned label ids) and reads the
labels from those offsets: labels learned after that snapshot by a holder that died are learned again,
as after a crash of a single worker.

The worker id is the host name and a slot number held with an exclusive ``flock`` in the state folder
(:func:`claim_worker_id`): two live processes on one host never share an id, and a restarted worker
usually gets its former id back (the lock of a dead process is released by the OS).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mode import Service

from hanzo.ml.config.errors import RegistryError
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.streams.learner_service import LearnerService, LearnerSlot

logger = logging.getLogger(__name__)

LEASE_KEY = "hanzo:learner-lease"

# compare-and-renew: extend the lease only while it holds our id
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# compare-and-delete: release only our own lease
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """A lease in Redis held by one holder id at a time (sync redis-py client).

    Parameters
    ----------
    redis_client
        A sync redis-py client.
    holder
        This worker's id (stored as the key's value).
    key_prefix
        Prefix of the Redis keys; the key is ``<key_prefix>hanzo:learner-lease``.
    ttl_ms
        Lifetime of the lease unless renewed.

    Examples
    --------
    >>> lease = Lease(None, "host-a:0", key_prefix="shop:", ttl_ms=10_000)
    >>> lease.key, lease.holder
    ('shop:hanzo:learner-lease', 'host-a:0')
    """

    def __init__(self, redis_client: Any, holder: str, key_prefix: str = "", ttl_ms: int = 10_000) -> None:
        self.redis = redis_client
        self.holder = holder
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms

    @property
    def key(self) -> str:
        """The Redis key of the lease."""
        return f"{self.key_prefix}{LEASE_KEY}"

    def acquire(self) -> bool:
        """Take the lease when it is free (``SET NX PX``) or already ours (then renew it)."""
        if self.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            return True
        return self.renew()

    def renew(self) -> bool:
        """Extend the lease by ``ttl_ms`` if this holder still holds it; False when it is lost."""
        return bool(self.redis.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms))

    def release(self) -> bool:
        """Delete the lease if this holder holds it; False when it was not ours (expired or taken)."""
        return bool(self.redis.eval(_RELEASE, 1, self.key, self.holder))

    def current_holder(self) -> str | None:
        """The id holding the lease now, or None when it is free."""
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


@dataclass
class WorkerId:
    """A worker id and the lock file that keeps it unique among the live processes of one host."""

    value: str
    lock: IO[str] | None = None

    def close(self) -> None:
        """Release the id's lock (the OS does it too when the process dies)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def claim_worker_id(folder: Path, host: str | None = None, slots: int = 256) -> WorkerId:
    """``host:N`` with the lowest N whose lock file in ``folder`` no live process holds.

    A restarted worker gets its former id back when no other worker took the slot meanwhile, so it
    can take back its own lease at once. With every slot held, ``host:pid:uuid`` (unique, not stable).
    """
    host = host or socket.gethostname()
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(slots):
        f = (folder / f"worker-{n}.lock").open("a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        return WorkerId(f"{host}:{n}", f)
    return WorkerId(f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}")


def swap_learner(slot: LearnerSlot, scorers: Sequence[Any], new: OnlineLearner) -> None:
    """Make ``new`` the learner of ``slot`` and of the scorers of the same model (call between batches)."""
    slot.learner = new
    slot.last_snapshot_examples = new.examples_learned
    slot.last_snapshot_at = time.monotonic()
    for scorer in scorers:
        if scorer.name == slot.name:
            scorer.learner = new


async def load_newer_snapshots(
    slots: Sequence[LearnerSlot], scorers: Sequence[Any], registry: Any
) -> list[str]:
    """Swap in the registry's latest version of each model that differs from the live one.

    Resolving and loading run in a thread; the swap itself runs on the event loop, between batches.
    Returns the models swapped.
    """
    swapped = []
    for slot in slots:
        try:
            latest = await asyncio.to_thread(registry.resolve, slot.name)
        except RegistryError:
            continue  # no version yet: keep the live (fresh) learner
        if latest == slot.learner.version:
            continue
        learner, _ = await asyncio.to_thread(registry.load_version, slot.name, latest)
        if not isinstance(learner, OnlineLearner):
            logger.warning(
                "%s@%s is a %s, not an OnlineLearner; not loaded", slot.name, latest, type(learner)
            )
            continue
        swap_learner(slot, scorers, learner)
        swapped.append(slot.name)
        logger.info("%s: now %s (%d examples)", slot.name, latest, learner.examples_learned)
    return swapped


class Leadership(Service):
    """Take, hold and release the learner lease; learn while holding it, follow the registry otherwise.

    Parameters
    ----------
    lease
        The learner lease.
    learner
        The label consumer (built with ``autostart=False``); its ``fence`` becomes :meth:`fence`.
    scorers
        The order scorers, whose learners are swapped with the slots' (``Scorer.name`` = model).
    registry
        The model registry (``resolve``, ``load_version``).
    renew_every_s, poll_every_s
        How often the holder renews, and how often a non-holder tries the lease and the registry.
    contend
        False for a scoring-only worker (``role: score``): it never takes the lease, so it never learns,
        and only follows the registry.

    Examples
    --------
    >>> from hanzo.ml.learners.vectors import InMemoryVectorStore
    >>> from hanzo.ml.streams.learner_service import LabelJoiner
    >>> service = LearnerService(LabelJoiner([], None, vectors=InMemoryVectorStore()), "", "labels", None)
    >>> leadership = Leadership(Lease(None, "host-a:0"), service, [], None)
    >>> leadership.holding, service.fence()
    (False, False)
    """

    def __init__(
        self,
        lease: Lease,
        learner: LearnerService,
        scorers: Sequence[Any],
        registry: Any,
        renew_every_s: float = 3.0,
        poll_every_s: float = 2.0,
        worker_id: WorkerId | None = None,
        contend: bool = True,
        **kwargs: Any,
    ) -> None:
        self.lease = lease
        self.learner = learner
        self.scorers = scorers
        self.registry = registry
        self.renew_every_s = renew_every_s
        self.poll_every_s = poll_every_s
        self.worker_id = worker_id
        self.contend = contend
        self.holding = False
        self.valid_until = 0.0
        learner.fence = self.fence
        super().__init__(**kwargs)

    def fence(self) -> bool:
        """Whether the lease is surely still ours: held, and renewed less than ``ttl - renew_every_s`` ago."""
        return self.holding and time.monotonic() < self.valid_until

    async def on_started(self) -> None:
        """Start the lease loop."""
        self.add_future(self._run())

    async def on_stop(self) -> None:
        """Stop learning (final snapshot while the lease holds), release the lease, free the worker id."""
        if self.holding:
            await self.learner.stop_learning(final_snapshot=self.fence())
            self.holding = False
            try:
                await asyncio.to_thread(self.lease.release)
                logger.info("learner lease %s released by %s", self.lease.key, self.lease.holder)
            except Exception:  # it expires by itself
                logger.warning("could not release the learner lease %s", self.lease.key, exc_info=True)
        if self.worker_id is not None:
            self.worker_id.close()

    async def _run(self) -> None:
        while not self.should_stop:
            if self.holding:
                await self._hold()
                await self.sleep(self.renew_every_s)
            else:
                await self._poll()
                await self.sleep(self.poll_every_s)

    async def _call(self, fn: Any) -> bool:
        """``fn()`` in a thread, False on any error or after ``renew_every_s`` (Redis unreachable)."""
        try:
            return bool(await asyncio.wait_for(asyncio.to_thread(fn), timeout=self.renew_every_s))
        except Exception as exc:
            logger.debug("learner lease %s: %s failed: %r", self.lease.key, fn.__name__, exc)
            return False

    def _renewed(self, started: float) -> None:
        self.valid_until = started + self.lease.ttl_ms / 1000 - self.renew_every_s

    async def _poll(self) -> None:
        started = time.monotonic()
        if self.contend and await self._call(self.lease.acquire):
            self.holding = True
            self._renewed(started)
            logger.info("learner lease %s taken by %s", self.lease.key, self.lease.holder)
            try:
                await load_newer_snapshots(self.learner.joiner.slots, self.scorers, self.registry)
                await self.learner.start_learning()
            except Exception:
                logger.exception("could not start learning; releasing the learner lease")
                self.holding = False
                await self.learner.stop_learning()
                await self._call(self.lease.release)
            return
        try:
            await load_newer_snapshots(self.learner.joiner.slots, self.scorers, self.registry)
        except Exception:  # the next poll retries; scoring goes on with the current learner
            logger.warning("loading a newer snapshot failed", exc_info=True)

    async def _hold(self) -> None:
        started = time.monotonic()
        if not await self._call(self.lease.renew):
            self.holding = False
            logger.warning("learner lease %s lost by %s: learning stops", self.lease.key, self.lease.holder)
            await self.learner.stop_learning(timeout=max(0.1, self.valid_until - time.monotonic()))
            return
        self._renewed(started)
        if not self.learner.learning and not self.learner.should_stop and not self.should_stop:
            logger.warning("the label consume loop stopped while holding the lease; restarting it")
            try:
                await self.learner.start_learning()
            except Exception:  # the broker is away: the next renewal retries
                logger.warning("restarting the label consumer failed", exc_info=True)


def learner_leadership(runtime: Any, learner: LearnerService, ttl_ms: int = 10_000) -> Leadership:
    """The worker's :class:`Leadership` over ``runtime`` (a :class:`streams.runtime.Runtime`)."""
    s = runtime.settings
    worker_id = claim_worker_id(Path(s.state_dir) / "workers")
    lease = Lease(runtime.redis, worker_id.value, key_prefix=s.key_prefix, ttl_ms=ttl_ms)
    contend = s.role != "score"
    if contend:
        logger.info("worker id %s (learner lease %s)", worker_id.value, lease.key)
    else:
        logger.info("worker id %s, role score: never learns, follows the registry", worker_id.value)
    return Leadership(
        lease, learner, runtime.processor.scorers, runtime.registry, worker_id=worker_id, contend=contend
    )
