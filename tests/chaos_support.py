"""Fault-injection helpers shared by ``bench.chaos`` and the chaos and outage tests.

They run the real worker (``python -m streams.cli worker``) as a child process, produce a simulated
stream at a steady rate with malformed messages mixed in, kill the worker with SIGKILL at random points
and restart it (same consumer group, same registry folder), and then check the outcome against an
independent recomputation from the produced events:

- every customer, product and category aggregate in Redis equals :func:`recompute_features` (counts and
  distinct counts exactly, sums and means to float rounding); a missing or extra order shows up in the
  lifetime order count (:func:`compare_features`);
- every order has a score key (:func:`missing_scores`);
- every label was learned exactly once: the running worker's ``/health`` ``models.*.examples`` equals the
  number of distinct labels (the learner restored from the latest snapshot counts what it learned before);
- every malformed message became a dead letter with the expected reason (:func:`read_dead_letters`).

The recomputation reads the events with its own code; from the feature definitions it takes only what
they declare (source, field, filter, aggregation, window and bucket length, default) and follows the window
semantics of :mod:`features.windows`: the value of window ``W`` as of ``t`` aggregates the buckets
``(floor(t/b) - W/b, floor(t/b)]``, and a read with no time is as of the entity's largest event time.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hanzo.ml.config.settings import Settings
from hanzo.ml.features import Aggregate, FeatureStore, RedisOnlineStore, load_definitions
from hanzo.ml.schemas.events import CustomerEvent, Label, Order
from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.offsets import fetched_end
from hanzo.ml.streams.runtime import feature_lateness_ms
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce

Event = Order | CustomerEvent | Label
MODEL = "fraud_detection"
_ASSIGNED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\].*partitions assigned: \[.+\]", re.M)
ROLES = ("orders", "events", "labels", "scores", "dead-letters")


# -- malformed messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injected:
    """One malformed message: the topic role it goes to, the dead-letter reason expected, its bytes."""

    role: str
    reason: str
    value: bytes
    key: bytes = b"bad"


def _order_doc(i: int) -> dict[str, Any]:
    return {
        "kind": "order",
        "order_id": f"bad-order-{i}",
        "customer_id": f"bad-customer-{i}",
        "event_time": 1_767_225_600_000,
        "items": [{"product_id": "p1", "category": "books", "quantity": 1, "unit_price": 10.0}],
        "total": 10.0,
        "currency": "EUR",
        "payment_method": "card",
        "billing_country": "DE",
        "shipping_country": "DE",
        "channel": "web",
    }


def malformed_messages(rounds: int = 1) -> list[Injected]:
    """Each kind of unusable message, ``rounds`` times, with the reason the worker must give it.

    Examples
    --------
    >>> sorted({m.reason for m in malformed_messages()})  # doctest: +NORMALIZE_WHITESPACE
    ['malformed_json', 'non_finite', 'not_utf8', 'oversized', 'schema', 'timestamp',
     'unknown_schema_version']
    """
    out: list[Injected] = []
    for r in range(rounds):
        i = r * 100

        def doc(j: int, i: int = i, **changes: Any) -> bytes:
            d = _order_doc(i + j)
            for k, v in changes.items():
                if v is None:
                    d.pop(k)
                else:
                    d[k] = v
            return json.dumps(d).encode()

        nan = json.dumps(_order_doc(i + 5)).replace('"total": 10.0', '"total": NaN').encode()
        event_nan = json.dumps(
            {
                "kind": "customer_event",
                "event_id": f"bad-event-{i}",
                "customer_id": f"bad-customer-{i}",
                "event_time": 1_767_225_600_000,
                "type": "refund",
                "value": "__NAN__",
            }
        ).replace('"__NAN__"', "NaN")
        out += [
            Injected("orders", "malformed_json", b'{"kind": "order", "order_id": '),
            Injected("orders", "not_utf8", b'{"kind": "order", "order_id": "\xff\xfe"}'),
            Injected("orders", "schema", doc(1, total="lots")),  # wrong type
            Injected("orders", "schema", doc(2, items=None, payment_method=None)),  # missing fields
            Injected("orders", "non_finite", nan),
            Injected(
                "orders",
                "schema",
                doc(3, items=[{"product_id": "p1", "category": "books", "quantity": -2, "unit_price": 1.0}]),
            ),  # negative quantity
            Injected("orders", "timestamp", doc(4, event_time=1_767_225_600)),  # seconds, not ms
            Injected("orders", "oversized", doc(6, channel="web", notes="x" * 300_000)),
            Injected("orders", "unknown_schema_version", doc(7, schema_version=2)),
            Injected("events", "malformed_json", b"[1, 2"),
            Injected("events", "non_finite", event_nan.encode()),
            Injected("labels", "malformed_json", b"{label"),
            Injected(
                "labels",
                "schema",
                json.dumps({"kind": "label", "label_id": f"bad-label-{i}", "target": "fraud"}).encode(),
            ),
        ]
    return out


# -- the worker process ---------------------------------------------------------------------------------


def worker_env(
    bootstrap: str,
    redis_url: str,
    topics: Mapping[str, str],
    key_prefix: str,
    registry_dir: Path,
    state_dir: Path,
    **extra: str,
) -> dict[str, str]:
    """The HANZO_* environment of a worker (every incarnation of one run gets the same one)."""
    env = {
        **os.environ,
        "HANZO_KAFKA_BOOTSTRAP": bootstrap,
        "HANZO_REDIS_URL": redis_url,
        "HANZO_TOPIC_ORDERS": topics["orders"],
        "HANZO_TOPIC_EVENTS": topics["events"],
        "HANZO_TOPIC_LABELS": topics["labels"],
        "HANZO_TOPIC_SCORES": topics["scores"],
        "HANZO_TOPIC_DEAD_LETTERS": topics["dead-letters"],
        "HANZO_KEY_PREFIX": key_prefix,
        "HANZO_REGISTRY_DIR": str(registry_dir),
        "HANZO_STATE_DIR": str(state_dir),
        "HANZO_CONSUMER_GROUP": f"g-{key_prefix.strip(':')}",
        "HANZO_APP_ID": f"app-{key_prefix.strip(':')}",
    }
    env.update(extra)
    return env


def scrape(port: int, timeout: float = 2.0) -> dict[str, float]:
    """Prometheus samples of ``/metrics``: ``name`` (summed over labels) and ``name|label=value``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    out: dict[str, float] = defaultdict(float)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] += s.value
            for k, v in s.labels.items():
                out[f"{s.name}|{k}={v}"] += s.value
    return out


class Worker:
    """``python -m streams.cli worker`` as a child process, restartable; every start gets new ports."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, args: Sequence[str] = ()) -> None:
        self.env = dict(env)
        self.args = list(args)  # options of `worker`, e.g. ["--pipeline", path]
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0
        self.started_wall = 0.0
        self.web_port = 0
        self.metrics_port = 0
        self.log_path = log_dir / "worker-0.log"

    def start(self) -> None:
        """Start a new incarnation (the previous one must be gone)."""
        assert self.proc is None or self.proc.poll() is not None, "the worker still runs"
        self.web_port, self.metrics_port = free_port(), free_port()
        env = {**self.env, "HANZO_WEB_PORT": str(self.web_port), "HANZO_METRICS_PORT": str(self.metrics_port)}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        self.starts += 1
        with self.log_path.open("wb") as out:
            self.started_at, self.started_wall = time.monotonic(), time.time()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hanzo.ml.streams.cli", "worker", *self.args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        """Whether the current incarnation runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the current incarnation (our own child, by pid) and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def metrics(self) -> dict[str, float]:
        """The current incarnation's /metrics (raises OSError while it does not answer)."""
        return scrape(self.metrics_port)

    def processed(self) -> float:
        """Events the current incarnation processed (0 while it does not answer)."""
        try:
            return self.metrics().get("hanzo_events_processed_total", 0.0)
        except (OSError, ValueError):
            return 0.0

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of GET /health (raises OSError while the web server does not answer)."""
        url = f"http://127.0.0.1:{self.web_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def examples(self) -> int | None:
        """``models.fraud_detection.examples`` of /health (None while it does not answer)."""
        try:
            return int(self.health()[1]["models"][MODEL]["examples"])
        except (OSError, ValueError, KeyError):
            return None

    def assigned_after(self) -> float | None:
        """Seconds from the start of this incarnation to its first partition assignment (from its log)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        m = _ASSIGNED.search(text)
        if m is None:
            return None
        logged = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
        return logged.timestamp() - self.started_wall

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the current incarnation's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, worker: Worker | None = None) -> None:
    """Poll ``predicate`` every 0.25 s; fail naming ``what`` (and the worker's log) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker is not None and not worker.alive:
            raise AssertionError(f"the worker died while waiting for {what}:\n{worker.log_tail()}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


async def _log_ends(bootstrap: str, topics: Sequence[str], count: int) -> dict[TopicPartition, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        await c.topics()  # the metadata of every topic
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends, seen = dict.fromkeys(tps, 0), 0
        deadline = time.monotonic() + 60
        while seen < count and time.monotonic() < deadline:
            for tp, rs in (await c.getmany(timeout_ms=500)).items():
                seen += len(rs)
                ends[tp] = rs[-1].offset + 1
        if seen != count:
            raise AssertionError(f"{topics} hold {seen} messages, not the {count} produced")
        return ends
    finally:
        await c.stop()


def log_ends(bootstrap: str, topics: Sequence[str], count: int) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition of ``topics``, which hold ``count`` messages.

    Read from the messages themselves: Tansu's ListOffsets answers the base offset of the last record
    batch + 1 (streams/offsets.py), so ``end_offsets`` is no measure of what a consumer has left to read.
    """
    return asyncio.run(_log_ends(bootstrap, topics, count))


async def _group_backlog(bootstrap: str, group: str, ends: Mapping[TopicPartition, int]) -> int:
    # a consumer of the group that never subscribes: it reads the group's offsets without joining it
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        backlog = 0
        for tp, end in ends.items():
            backlog += end - ((await c.committed(tp)) or 0)
        return backlog
    finally:
        await c.stop()


def group_backlog(bootstrap: str, group: str, ends: Mapping[TopicPartition, int]) -> int:
    """Messages before ``ends`` (see :func:`log_ends`) past the offsets ``group`` committed.

    The worker commits a batch only after its effects are in Redis, and a rebuild commits the beginning of
    every partition before replaying, so 0 after a rebuild means the replay rewrote every event.
    """
    return asyncio.run(_group_backlog(bootstrap, group, ends))


# -- kill -9 supervisor ---------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Supervisor(threading.Thread):
    """Kill the worker with SIGKILL at random points ``kills`` times and restart it at once.

    After each start it waits for the first processed batch (``recoveries`` holds start -> first batch,
    seconds; ``unmeasured`` counts starts that saw none within ``first_batch_timeout_s`` or while
    ``work_left()`` said the stream was drained), then lets the worker run ``uniform(*uptime_s)`` seconds
    and kills it. With probability ``early_kill_share`` a kill instead lands ``uniform(0.5, 3)`` s after
    the start, before or during the group join (no recovery is recorded for that incarnation).
    """

    worker: Worker
    kills: int
    uptime_s: tuple[float, float] = (2.0, 6.0)
    early_kill_share: float = 0.2
    seed: int = 0
    first_batch_timeout_s: float = 60.0
    work_left: Callable[[], bool] | None = None
    done_kills: int = 0
    recoveries: list[float] = field(default_factory=list)
    unmeasured: int = 0
    assigned: list[float] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name="chaos-supervisor", daemon=True)
        self._stop_event = threading.Event()
        self._rng = random.Random(self.seed)

    def stop(self) -> None:
        """Ask the loop to end (the worker is left running)."""
        self._stop_event.set()

    def _sleep(self, seconds: float) -> bool:
        return not self._stop_event.wait(seconds)

    def _first_batch(self) -> float | None:
        deadline = self.worker.started_at + self.first_batch_timeout_s
        checked = time.monotonic()
        while time.monotonic() < deadline and not self._stop_event.is_set():
            if self.work_left is not None and time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if not self.work_left():
                    return None
            if not self.worker.alive:
                msg = f"the worker exited on its own:\n{self.worker.log_tail()}"
                raise AssertionError(msg)
            if self.worker.processed() > 0:
                took = time.monotonic() - self.worker.started_at
                assigned = self.worker.assigned_after()
                if assigned is not None:
                    self.assigned.append(assigned)
                return took
            time.sleep(0.1)
        return None

    def run(self) -> None:
        """The loop: wait for a batch, run a while, kill, restart."""
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        early = False
        while not self._stop_event.is_set():
            if not early:
                took = self._first_batch()
                if took is not None:
                    self.recoveries.append(took)
                else:
                    self.unmeasured += 1  # nothing left to process (or the stop came first)
            if self.done_kills >= self.kills:
                return
            early = self._rng.random() < self.early_kill_share
            if early:
                wait = max(0.0, self.worker.started_at + self._rng.uniform(0.5, 3.0) - time.monotonic())
            else:
                wait = self._rng.uniform(*self.uptime_s)
            if not self._sleep(wait):
                return
            self.worker.kill9()
            self.done_kills += 1
            self.kill_times.append(time.monotonic())
            self.worker.start()


# -- background producer --------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class BackgroundProducer(threading.Thread):
    """Produce ``events`` at ``rate`` events/s and the ``bad`` messages spread over the same time."""

    events: Sequence[Event]
    bootstrap: str
    topics: Mapping[str, str]
    rate: float
    bad: Sequence[Injected] = ()
    error: BaseException | None = None
    finished_at: float | None = None
    started_at: float = 0.0

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name="chaos-producer", daemon=True)

    def run(self) -> None:
        """Produce everything, then record the time."""
        self.started_at = time.monotonic()
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        self.finished_at = time.monotonic()

    async def _main(self) -> None:
        kinds = {"order": self.topics["orders"], "customer_event": self.topics["events"]}
        kinds["label"] = self.topics["labels"]
        await asyncio.gather(
            produce(self.events, self.bootstrap, kinds, rate=self.rate),
            self._inject(len(self.events) / self.rate),
        )

    async def _inject(self, duration: float) -> None:
        if not self.bad:
            return
        await asyncio.sleep(1.0)  # produce() creates the topics
        p = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", max_request_size=1_048_576)
        await p.start()
        try:
            gap = max(0.0, duration - 2.0) / len(self.bad)
            for m in self.bad:
                await p.send_and_wait(self.topics[m.role], m.value, key=m.key)
                await asyncio.sleep(gap)
        finally:
            await p.stop()


# -- independent recomputation ---------------------------------------------------------------------------

_WHERE = re.compile(r"""^\s*([a-z_]+)\s*==\s*["']?([^"']*)["']?\s*$""")


def _field_value(event: Event, name: str) -> Any:
    if name == "n_items":
        assert isinstance(event, Order)
        return float(sum(i.quantity for i in event.items))
    if name == "n_lines":
        assert isinstance(event, Order)
        return float(len(event.items))
    return getattr(event, name)


def _matches(a: Aggregate, event: Event) -> bool:
    if a.source == "orders" and not isinstance(event, Order):
        return False
    if a.source == "customer_events" and not isinstance(event, CustomerEvent):
        return False
    if a.where:
        m = _WHERE.match(a.where)
        if m is None:
            msg = f"recomputation cannot read the filter {a.where!r} of {a.name}"
            raise ValueError(msg)
        return str(getattr(event, m.group(1), None)) == m.group(2)
    return True


#: The entities the recomputation knows, and the item field holding each item-keyed one's key.
ENTITIES = ("customer", "product", "category")
_ITEM_KEY = {"product": "product_id", "category": "category"}
_ITEM_VALUE = {
    "items.quantity": lambda i: float(i.quantity),
    "items.unit_price": lambda i: float(i.unit_price),
    "items.revenue": lambda i: i.quantity * i.unit_price,
}


def supported(a: Aggregate) -> bool:
    """Whether :func:`recompute_features` recomputes ``a``.

    Customer aggregates of item fields are not recomputed; product and category ones are (an order gives
    each product or category the lines that carry it).
    """
    item_field = a.field is not None and a.field.startswith("items.")
    if a.entity == "customer":
        return not item_field
    return a.entity in _ITEM_KEY and (not item_field or a.field in _ITEM_VALUE)


def _keys(entity: str, event: Order | CustomerEvent) -> list[str]:
    """The ids of ``entity`` an event updates: its customer, the products (categories) of an order's
    lines, a customer event's product."""
    if entity == "customer":
        return [event.customer_id]
    if isinstance(event, Order):
        return list(dict.fromkeys(str(getattr(i, _ITEM_KEY[entity])) for i in event.items))
    product = getattr(event, "product_id", None)
    return [product] if entity == "product" and product else []


def recompute_features(
    events: Iterable[Event], definitions: Sequence[Aggregate], entity: str = "customer"
) -> dict[str, dict[str, float | None]]:
    """Every ``entity``'s aggregates as of its largest event time, computed from the events alone."""
    by_key: dict[str, list[Order | CustomerEvent]] = defaultdict(list)
    for e in events:
        if isinstance(e, Order | CustomerEvent):
            for key in _keys(entity, e):
                by_key[key].append(e)
    aggs = [a for a in definitions if a.entity == entity and supported(a)]
    out: dict[str, dict[str, float | None]] = {}
    for key, evs in by_key.items():
        t = max(e.event_time for e in evs)
        row: dict[str, float | None] = {}
        for a in aggs:
            if a.window_ms:
                b = a.bucket_ms
                lo = t // b - a.window_ms // b
                chosen = [e for e in evs if e.event_time // b > lo and _matches(a, e)]
            else:
                chosen = [e for e in evs if _matches(a, e)]
            row[a.name] = _aggregate(a, chosen, t, key if entity in _ITEM_KEY else None)
        out[key] = row
    return out


def _item_values(a: Aggregate, event: Event, key: str) -> list[float]:
    """The values an order gives the item-keyed entity ``key`` of ``a``: one per line carrying it."""
    assert isinstance(event, Order) and a.field is not None
    lines = [i for i in event.items if str(getattr(i, _ITEM_KEY[a.entity])) == key]
    return [_ITEM_VALUE[a.field](i) for i in lines]


def _aggregate(a: Aggregate, chosen: Sequence[Event], t: int, key: str | None = None) -> float | None:
    kind = a.aggregation
    if kind == "count":
        return float(len(chosen))
    if kind == "time_since_last":
        if not chosen:
            return a.default
        return max(0.0, (t - max(e.event_time for e in chosen)) / 1000)
    if key is not None and a.field is not None and a.field.startswith("items."):
        lines = [(e.event_time, _item_values(a, e, key)) for e in chosen]
        if kind == "last":  # the last line of the latest order
            latest = [(when, v[-1]) for when, v in lines if v]
            return float(max(latest)[1]) if latest else a.default
        values = [x for _, v in lines for x in v]
    else:
        values = [_field_value(e, a.field or "") for e in chosen]
        values = [v for v in values if v is not None]
    if kind == "distinct_count":
        return float(len(set(map(str, values))))
    if not values:
        return 0.0 if kind == "sum" else a.default
    if kind == "sum":
        return float(math.fsum(values))
    if kind == "mean":
        return float(math.fsum(values) / len(values))
    if kind == "max":
        return float(max(values))
    if kind == "min":
        return float(min(values))
    if kind == "last":
        return float(max(zip((e.event_time for e in chosen), values, strict=True))[1])
    msg = f"recomputation does not know aggregation {kind!r} of {a.name}"
    raise ValueError(msg)


@dataclass
class FeatureReport:
    """Redis against the recomputation: what differs, and the order counts lost or counted twice."""

    entities: dict[str, int] = field(default_factory=dict)
    """Ids compared per entity."""
    values_checked: int = 0
    mismatches: list[tuple[str, str, float | None, float | None]] = field(default_factory=list)
    lost_orders: int = 0
    double_counted_orders: int = 0

    @property
    def customers(self) -> int:
        """Customers compared."""
        return self.entities.get("customer", 0)


def _same(expected: float | None, actual: float | None) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)


def feature_store(client: redis.Redis, key_prefix: str) -> FeatureStore:
    """A reader of the worker's features (same definitions and lateness as the worker)."""
    definitions = load_definitions()
    return FeatureStore(
        definitions=definitions,
        backend=RedisOnlineStore(client, key_prefix=key_prefix),
        allowed_lateness_ms=feature_lateness_ms(Settings(), definitions),
    )


def compare_features(
    client: redis.Redis,
    key_prefix: str,
    events: Iterable[Event],
    chunk: int = 500,
    entities: Sequence[str] = ENTITIES,
) -> FeatureReport:
    """Read every entity's features with ``get_features_batch`` and compare with the recomputation.

    Customers, and the products and categories of the orders (each updated from every partition, by
    whichever worker holds it). Lost and double-counted orders come from the customers' lifetime count.
    """
    definitions = load_definitions()
    events = list(events)
    store = feature_store(client, key_prefix)
    report = FeatureReport()
    for entity in entities:
        expected = recompute_features(events, definitions, entity)
        names = [a.name for a in definitions if a.entity == entity and supported(a)]
        lifetime_counts = [
            a.name
            for a in definitions
            if entity == "customer"
            and a.entity == entity
            and supported(a)
            and a.source == "orders"
            and a.aggregation == "count"
            and not a.window_ms
            and not a.where
        ]
        report.entities[entity] = len(expected)
        ids = sorted(expected)
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            rows = store.get_features_batch(entity=entity, ids=part, features=names)
            for key, row in zip(part, rows, strict=True):
                want = expected[key]
                for name in names:
                    report.values_checked += 1
                    if not _same(want[name], row.get(name)):
                        report.mismatches.append((f"{entity}:{key}", name, want[name], row.get(name)))
                for name in lifetime_counts[:1]:
                    diff = int(round((row.get(name) or 0.0) - (want[name] or 0.0)))
                    report.lost_orders += max(0, -diff)
                    report.double_counted_orders += max(0, diff)
    return report


def missing_scores(
    client: redis.Redis, key_prefix: str, order_ids: Sequence[str], chunk: int = 5000
) -> list[str]:
    """Order ids without a ``score:fraud_detection:<id>`` key."""
    missing: list[str] = []
    for i in range(0, len(order_ids), chunk):
        part = order_ids[i : i + chunk]
        pipe = client.pipeline(transaction=False)
        for oid in part:
            pipe.exists(f"{key_prefix}score:{MODEL}:{oid}")
        missing += [oid for oid, n in zip(part, pipe.execute(), strict=True) if not n]
    return missing


def count_scores(client: redis.Redis, key_prefix: str) -> int:
    """Score keys of the fraud model under ``key_prefix``."""
    return sum(1 for _ in client.scan_iter(match=f"{key_prefix}score:{MODEL}:*", count=10_000))


# -- dead letters ---------------------------------------------------------------------------------------


@dataclass
class DeadLetterReport:
    """Dead letters read back: per reason, distinct origins (topic, partition, offset) and raw copies."""

    by_reason: dict[str, int]
    copies_by_reason: dict[str, int]
    total: int

    @property
    def duplicates(self) -> int:
        """Copies beyond the first of one origin (a batch re-delivered after a kill re-sends them)."""
        return self.total - sum(self.by_reason.values())


async def _read_topic(bootstrap: str, topic: str) -> list[bytes]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await c.start()
    out: list[bytes] = []
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c.topics()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return out
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        deadline = time.monotonic() + 30
        fetched = False
        while time.monotonic() < deadline:
            positions = [await c.position(tp) for tp in tps]
            ends = {tp: fetched_end(c, tp, ends[tp]) for tp in tps}  # Tansu's end_offsets can be low
            if fetched and all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            for rs in (await c.getmany(timeout_ms=500)).values():
                out.extend(r.value for r in rs if r.value is not None)
            fetched = True
    finally:
        await c.stop()
    return out


def read_dead_letters(bootstrap: str, topic: str) -> DeadLetterReport:
    """Every dead letter on ``topic`` so far."""
    raw = asyncio.run(_read_topic(bootstrap, topic))
    origins: dict[tuple[str, int, int], str] = {}
    copies: Counter[str] = Counter()
    for v in raw:
        d = json.loads(v)
        origins[d["topic"], d["partition"], d["offset"]] = d["reason"]
        copies[d["reason"]] += 1
    return DeadLetterReport(dict(Counter(origins.values())), dict(copies), len(raw))


def expected_reasons(bad: Iterable[Injected]) -> dict[str, int]:
    """Dead letters per reason that ``bad`` must give."""
    return dict(Counter(m.reason for m in bad))


def small_shop(orders: int = 1500, seed: int = 7) -> list[Event]:
    """A small simulated shop whose labels follow their orders within hours (no browsing events)."""
    config = SimulatorConfig(
        seed=seed,
        orders=orders,
        customers=200,
        orders_per_day=3000,
        browse_events_per_order=0.0,
        chargeback_delay_days=(0.1, 0.5),
        settle_delay_days=(0.1, 0.5),
        fraud_rate=0.05,
    )
    return list(Simulator(config).events())


def labels_of(events: Iterable[Event], target: str = "fraud") -> set[str]:
    """Distinct label ids of ``target`` in ``events``."""
    return {e.label_id for e in events if isinstance(e, Label) and e.target == target}
