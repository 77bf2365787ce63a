"""Worker processes for the end-to-end benchmark, and the scale-out figure ``two_workers_speedup``.

:class:`BenchWorker` runs the real worker (``python -m streams.cli worker``) as a child process in its own
folder, with its own ports, and reads its ``/metrics`` and resident memory. :func:`measure_group` times a
group of workers draining an orders topic; :func:`joined_group_run` lets a group join on fresh topics
before it produces the events; :func:`two_workers_speedup` compares two workers in one consumer group with
one worker, both measured that way in the same run.

Each group gets its own Redis key prefix, consumer group and registry folder, so it starts from nothing:
no dedupe marks, no snapshot, offsets from the beginning. Only the holder of the learner lease reads the
labels and learns (:mod:`streams.leadership`, one writer per model); the others score, so learning does
not scale out: that is part of what the figure measures.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation import produce
from hanzo.ml.streams.simulation.producer import Event
from hanzo.ml.streams.topics import ensure_topics
from tests.chaos_support import scrape, worker_env

__all__ = [
    "BenchWorker",
    "roles_run",
    "GroupRun",
    "joined_group_run",
    "measure_group",
    "start_group",
    "stop_group",
    "two_workers_speedup",
]


class BenchWorker:
    """One ``python -m streams.cli worker`` child process (started in ``workdir``, logs to ``workdir/log``).

    Examples
    --------
    >>> w = BenchWorker({"HANZO_KEY_PREFIX": "b1:"}, Path("/tmp/bench-doc"), name="w0")
    >>> w.alive, w.log_path.name
    (False, 'w0.log')
    """

    def __init__(self, env: Mapping[str, str], workdir: Path, name: str = "worker") -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.web_port = 0
        self._orders_done = 0.0
        self.log_path = workdir / f"{name}.log"

    def start(self) -> None:
        """Spawn the worker on new free ports."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.web_port, self.metrics_port = free_port(), free_port()
        env = {
            **self.env,
            "HANZO_WEB_PORT": str(self.web_port),
            "HANZO_METRICS_PORT": str(self.metrics_port),
            "HANZO_LOG_LEVEL": self.env.get("HANZO_LOG_LEVEL", "INFO"),
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "hanzo.ml.streams.cli", "worker"],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        """Its ``/metrics`` samples (raises OSError while it does not answer)."""
        return scrape(self.metrics_port)

    def orders_done(self, orders_topic: str) -> float:
        """Orders it processed: 0 before it first answers, then its last answer while a scrape fails."""
        try:
            self._orders_done = self.metrics().get(f"hanzo_events_processed_total|topic={orders_topic}", 0.0)
        except (OSError, ValueError):
            pass  # a scrape that times out on a busy machine is not "0 orders done"
        return self._orders_done

    def rss_mb(self) -> float:
        """Resident memory of the process, MB (0 when it is gone)."""
        if self.proc is None:
            return 0.0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (our own child, by pid), SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_group(
    n: int,
    bootstrap: str,
    redis_url: str,
    topics: Mapping[str, str],
    key_prefix: str,
    workdir: Path,
) -> list[BenchWorker]:
    """Start ``n`` workers in one consumer group (group, app id and registry named after ``key_prefix``)."""
    env = worker_env(
        bootstrap,
        redis_url,
        topics,
        key_prefix,
        workdir / "registry",
        workdir / "state",
        HANZO_LOG_LEVEL="INFO",
    )
    workers = [BenchWorker(env, workdir, name=f"worker-{i}") for i in range(n)]
    for w in workers:
        w.start()
    return workers


def roles_run(
    bootstrap: str,
    redis_url: str,
    topics: Mapping[str, str],
    n_orders: int,
    n_labels: int,
    workdir: Path,
    timeout_s: float = 600.0,
) -> dict[str, float]:
    """One ``role: score`` worker and one ``role: learn`` worker on the prefilled topics (a fresh group).

    ``score_worker_orders_per_s`` is the scorer's rate, timed as :func:`measure_group` times a group;
    ``learner_labels_learned_when_scored`` what the learner had learned by then, and ``learner_done_s`` how
    long after the first order it had learned ``n_labels``.
    """
    env = worker_env(
        bootstrap, redis_url, topics, "r1:", workdir / "registry", workdir / "state", HANZO_LOG_LEVEL="INFO"
    )
    scorer = BenchWorker({**env, "HANZO_ROLE": "score"}, workdir, name="scorer")
    learner = BenchWorker({**env, "HANZO_ROLE": "learn"}, workdir, name="learner")
    try:
        learner.start()
        scorer.start()
        t0 = time.perf_counter()
        run = measure_group([scorer], topics["orders"], n_orders, timeout_s=timeout_s)
        learned = learner.metrics().get("hanzo_labels_learned_total", 0.0)
        deadline = time.monotonic() + timeout_s
        done = learned
        while done < n_labels and time.monotonic() < deadline and learner.alive:
            time.sleep(0.2)
            done = learner.metrics().get("hanzo_labels_learned_total", 0.0)
        return {
            "score_worker_orders_per_s": round(run.orders_per_s, 1),
            "learner_labels_learned_when_scored": learned,
            "learner_labels_learned": done,
            "learner_done_s": round(time.perf_counter() - t0, 1),
        }
    finally:
        stop_group([scorer, learner])


def stop_group(workers: Sequence[BenchWorker]) -> None:
    """Stop every worker of a group."""
    for w in workers:
        w.stop()


@dataclass
class GroupRun:
    """A group draining ``orders`` prefilled orders.

    ``orders_per_s`` is timed from the first order any worker processed to the last.
    ``both_busy_orders_per_s`` is timed from the moment every worker had processed orders to the moment
    the first of them had done all it would: after that the group is one busy worker and idle ones.
    """

    orders: int
    orders_per_s: float
    both_busy_orders_per_s: float = float("nan")
    both_busy_seconds: float = 0.0
    per_worker: list[float] = field(default_factory=list)
    complete: bool = True
    """False when ``stop_after_s`` ended the run first (``orders`` is then what was done)."""
    rss_samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(seconds since the first order, orders done, RSS MB of worker 0)."""


def measure_group(
    workers: Sequence[BenchWorker],
    orders_topic: str,
    n_orders: int,
    timeout_s: float = 600.0,
    poll_s: float = 0.1,
    on_sample: Callable[[float, float], None] | None = None,
    stop_after_s: float | None = None,
) -> GroupRun:
    """Poll the workers' ``/metrics`` until together they processed ``n_orders`` orders; time it.

    With ``stop_after_s``, a run still going that many seconds after the first order ends there and returns
    what was done (``complete=False``).
    """
    first = all_active = 0.0
    samples: list[tuple[float, float, float]] = []
    counts: list[tuple[float, list[float]]] = []  # (time, orders done by each worker), from all_active on
    last_sample = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for w in workers:
            if not w.alive:
                msg = f"{w.name} exited; see {w.log_path}:\n{w.log_tail()}"
                raise RuntimeError(msg)
        per = [w.orders_done(orders_topic) for w in workers]
        done = sum(per)
        now = time.perf_counter()
        if done > 0 and not first:
            first = now
        if not all_active and all(p > 0 for p in per):
            all_active = now
        if all_active:
            counts.append((now, per))
        if first and now - last_sample >= 1.0:
            last_sample = now
            samples.append((round(now - first, 2), done, round(workers[0].rss_mb(), 1)))
            if on_sample is not None:
                on_sample(now - first, done)
        cut = stop_after_s is not None and first > 0 and now - first >= stop_after_s and done < n_orders
        if done >= n_orders or cut:
            end, n_orders = now, n_orders if not cut else int(done)
            busy_rate, busy_s = _both_busy(counts)
            return GroupRun(
                orders=n_orders,
                orders_per_s=n_orders / (end - first),
                both_busy_orders_per_s=busy_rate,
                both_busy_seconds=busy_s,
                per_worker=per,
                complete=not cut,
                rss_samples=samples,
            )
        time.sleep(poll_s)
    done_by = [w.orders_done(orders_topic) for w in workers]
    msg = (
        f"the group of {len(workers)} did not process {n_orders} orders in {timeout_s:.0f}s (orders done "
        f"by each: {done_by}; logs: {[str(w.log_path) for w in workers]})"
    )
    raise RuntimeError(msg)


def _both_busy(counts: Sequence[tuple[float, list[float]]]) -> tuple[float, float]:
    """Group rate from the first sample to the first one where some worker had done all it ever did."""
    if len(counts) < 2:
        return float("nan"), 0.0
    finals = counts[-1][1]
    t0, start = counts[0][0], sum(counts[0][1])
    for t, per in counts[1:]:
        if any(p >= f for p, f in zip(per, finals, strict=True)) or t == counts[-1][0]:
            return ((sum(per) - start) / (t - t0), t - t0) if t > t0 else (float("nan"), 0.0)
    return float("nan"), 0.0


def _assigned_orders(worker: BenchWorker, orders_topic: str) -> int:
    """Orders partitions in the worker's last assignment (its log's last ``partitions assigned`` line)."""
    found = re.findall(r"partitions assigned: \[(.*)\]", worker.log_tail(200_000))
    return found[-1].count(f"'{orders_topic}/") if found else 0


def joined_group_run(
    n: int,
    bootstrap: str,
    redis_url: str,
    events: Sequence[Event],
    n_orders: int,
    workdir: Path,
    name: str,
    partitions: int = 4,
    join_timeout_s: float = 120.0,
) -> GroupRun:
    """``n`` workers join one group on fresh topics named after ``name``; then the events are produced.

    Every worker holds orders partitions before the first order exists, so no worker gets a head start and
    the partitions carry even work; the producer runs beside the group (as in production).
    """
    topics = {t: f"{t}-{name}" for t in ("orders", "events", "labels", "scores", "dead-letters")}
    asyncio.run(ensure_topics(bootstrap, dict.fromkeys(topics.values(), partitions)))
    group = start_group(n, bootstrap, redis_url, topics, f"{name}:", workdir / name)
    try:
        deadline = time.monotonic() + join_timeout_s
        while True:
            held = [_assigned_orders(w, topics["orders"]) for w in group]
            if all(h > 0 for h in held) and sum(held) == partitions:
                break
            dead = [w for w in group if not w.alive]
            if dead or time.monotonic() > deadline:
                logs = [str(w.log_path) for w in dead or group]
                msg = f"{name}: the group did not settle (orders partitions held: {held}); logs: {logs}"
                raise RuntimeError(msg)
            time.sleep(0.2)
        kinds = {"order": topics["orders"], "customer_event": topics["events"], "label": topics["labels"]}
        producer = threading.Thread(
            target=lambda: asyncio.run(produce(events, bootstrap, kinds, partitions=partitions)), daemon=True
        )
        producer.start()
        run = measure_group(group, topics["orders"], n_orders, timeout_s=300)
        producer.join(60)
        return run
    finally:
        stop_group(group)


def _median(xs: Sequence[float]) -> float:
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def two_workers_speedup(
    bootstrap: str,
    redis_url: str,
    events: Sequence[Event],
    n_orders: int,
    workdir: Path,
    repeats: int = 1,
) -> dict[str, object]:
    """One worker, then two in one group, ``repeats`` times, each on its own topics (``joined_group_run``).

    The speedup is the median of the paired ratios of orders/s, first order to last.
    """
    ones: list[GroupRun] = []
    twos: list[GroupRun] = []
    for r in range(repeats):
        ones.append(joined_group_run(1, bootstrap, redis_url, events, n_orders, workdir, f"one{r}"))
        twos.append(joined_group_run(2, bootstrap, redis_url, events, n_orders, workdir, f"two{r}"))
    ratios = sorted(t.orders_per_s / o.orders_per_s for t, o in zip(twos, ones, strict=True))
    return {
        "two_workers_speedup": round(_median(ratios), 3),
        "two_workers_speedups": [round(x, 3) for x in ratios],
        "two_workers_orders_per_s": [round(t.orders_per_s, 1) for t in twos],
        "one_worker_orders_per_s_paired": [round(o.orders_per_s, 1) for o in ones],
        "two_workers_orders_split": [[int(p) for p in t.per_worker] for t in twos],
        "two_workers_orders_per_s_both_busy": [round(t.both_busy_orders_per_s, 1) for t in twos],
    }
