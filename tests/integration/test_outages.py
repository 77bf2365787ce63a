"""Outages and duplicates on the real worker: Redis stopped mid-stream, and events delivered twice.

(a) Redis is stopped while the stream flows (30 s, the issue's figure, when it keeps its data; 10 s when it
comes back empty) and restarted on the same port. With a Redis that
keeps its data (AOF, fsync always) the worker must survive, report ``degraded`` on /health (503) during the
outage, count the errors (``hanzo_redis_errors_total``) and, once Redis is back, have applied every event
exactly once (our own recomputation), scored every order and learned every label once. With a Redis that
comes back empty (the embedded default keeps no data) the features must be rebuilt from Kafka, as the
architecture promises (Redis is rebuildable from the topics): the worker finds its epoch marker gone,
replays its partitions from the beginning and ends with the same features, scores and labels. The same
loss after the last event, with nothing left to consume, is reported and rebuilt too (no event to wait for).

(b) The same event sent again (same id, a new offset; as-is, with another total, with a later event time)
changes no aggregate.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaProducer, TopicPartition

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.schemas.events import CustomerEvent, Order, to_json
from hanzo.ml.streams.embedded import check_redis, free_port, redis_binary, start_redis, stop_process
from hanzo.ml.streams.rebuild import EpochMarker
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import (
    BackgroundProducer,
    Worker,
    compare_features,
    feature_store,
    group_backlog,
    labels_of,
    log_ends,
    missing_scores,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

#: seconds Redis stays down: the issue's 30 s for a Redis that keeps its data; the rebuild case needs less
OUTAGE_S = {True: 30.0, False: 10.0}
#: seconds the stream flows: it outlasts the worker's start, 2 s of processing and the outage
STREAM_S = {True: 75.0, False: 30.0}


def _events(seed: int, orders: int) -> list:
    sim = Simulator(
        SimulatorConfig(
            seed=seed,
            orders=orders,
            customers=200,
            orders_per_day=2000,
            browse_events_per_order=0.5,
            chargeback_delay_days=(0.2, 1.0),
            settle_delay_days=(0.2, 1.0),
            fraud_rate=0.05,
        )
    )
    return list(sim.events())


def _start_persistent_redis(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """A redis-server that keeps its data across restarts (AOF, fsync on every write)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)]
    argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    with (data_dir / "redis-server.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            check_redis(f"redis://127.0.0.1:{port}/0", 1.0)
            return proc
        except ServiceUnavailableError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait(5)
                raise
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc.pid, str(proc.args[0]))  # type: ignore[index]
    proc.wait(10)


def _produce_all(events: list, bootstrap: str, topic_names: dict[str, str]) -> None:
    kinds = {"order": topic_names["orders"], "customer_event": topic_names["events"]}
    kinds["label"] = topic_names["labels"]
    asyncio.run(produce(events, bootstrap, kinds))


def _worker(
    bootstrap: str, redis_url: str, topic_names: dict[str, str], key_prefix: str, tmp_path: Path
) -> tuple[Worker, redis.Redis]:
    """An (unstarted) worker of this test's topics and keys, and a client of its Redis."""
    env = worker_env(bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state")
    return Worker(env, tmp_path / "logs"), redis.Redis.from_url(redis_url)


def _rebuilt_and_caught_up(
    worker: Worker, bootstrap: str, ends: Mapping[TopicPartition, int], rebuilds: int
) -> Callable[[], bool]:
    """Whether ``worker`` started its ``rebuilds``-th rebuild and its group then committed ``ends``.

    ``hanzo_events_processed_total`` counts the replayed events too, so it passes the number produced
    before a replay is over; the committed offsets do not (a rebuild commits the beginning first).
    """
    group = worker.env["HANZO_CONSUMER_GROUP"]

    def done() -> bool:
        started = worker.metrics().get("hanzo_state_rebuilds_total") == rebuilds
        return started and group_backlog(bootstrap, group, ends) == 0

    return done


@pytest.mark.parametrize("keeps_data", [True, False], ids=["redis-keeps-data", "redis-comes-back-empty"])
def test_redis_outage_mid_stream(keeps_data, kafka_bootstrap, topic_names, key_prefix, tmp_path):
    events = _events(seed=31, orders=2000)
    order_ids = [e.order_id for e in events if isinstance(e, Order)]
    labels = labels_of(events)
    port, data_dir = free_port(), tmp_path / "redis"
    start = _start_persistent_redis if keeps_data else start_redis
    redis_proc = start(port, data_dir)
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    worker = Worker(env, tmp_path / "logs")
    # the stream outlasts the outage, so orders flow all through it
    producer = BackgroundProducer(
        events, kafka_bootstrap, topic_names, rate=len(events) / STREAM_S[keeps_data]
    )
    client = redis.Redis.from_url(redis_url)
    try:
        producer.start()
        worker.start()
        wait_for("a first batch", lambda: worker.processed() > 0, 90, worker)
        time.sleep(2.0)
        _stop(redis_proc)
        statuses: list[tuple[int, str]] = []
        outage_ends = time.monotonic() + OUTAGE_S[keeps_data]
        while time.monotonic() < outage_ends:
            code, body = worker.health()
            statuses.append((code, body["status"]))
            time.sleep(0.25)
        errors = worker.metrics()["hanzo_redis_errors_total"]
        flowing = producer.is_alive()  # orders were still flowing when the outage ended
        redis_proc = start(port, data_dir)
        assert (503, "degraded") in statuses, statuses
        assert errors > 0
        assert flowing or not keeps_data  # the short rebuild case may have drained by then

        producer.join(120)
        assert producer.error is None, producer.error
        produced = len(events) - len(labels)
        rebuilds = 1 if keeps_data else 2  # the first start, and for an empty Redis the outage
        ends = log_ends(kafka_bootstrap, [topic_names["orders"], topic_names["events"]], produced)
        done = _rebuilt_and_caught_up(worker, kafka_bootstrap, ends, rebuilds)
        wait_for("the rebuild and the stream processed", done, 120, worker)
        assert worker.processed() >= produced
        assert worker.alive and worker.starts == 1
        code, body = worker.health()
        assert (code, body["status"], body["redis"]) == (200, "ok", "ok")
        report = compare_features(client, key_prefix, events)
        assert report.lost_orders == 0 and report.double_counted_orders == 0
        assert report.mismatches == []
        assert missing_scores(client, key_prefix, order_ids) == []
        wait_for("every label learned", lambda: (worker.examples() or 0) >= len(labels), 60, worker)
        assert worker.examples() == len(labels)
        replays = worker.log_path.read_text(errors="replace").count("state lost: replaying")
        assert replays == rebuilds
    finally:
        worker.stop()
        client.close()
        _stop(redis_proc)


def test_redis_lost_while_the_stream_is_idle(kafka_bootstrap, topic_names, key_prefix, tmp_path):
    """Redis stopped after the last event and restarted empty: with no batch to notice it, the worker must
    still report the outage on /health and rebuild the features at once, not at the next event."""
    events = _events(seed=37, orders=500)
    _produce_all(events, kafka_bootstrap, topic_names)
    produced = len(events) - len(labels_of(events))
    ends = log_ends(kafka_bootstrap, [topic_names["orders"], topic_names["events"]], produced)
    port, data_dir = free_port(), tmp_path / "redis"
    redis_proc = start_redis(port, data_dir)
    redis_url = f"redis://127.0.0.1:{port}/0"
    worker, client = _worker(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path)
    try:
        worker.start()
        first = _rebuilt_and_caught_up(worker, kafka_bootstrap, ends, 1)  # the first start replays too
        wait_for("the stream processed", first, 120, worker)
        _stop(redis_proc)
        wait_for("/health degraded while idle", lambda: worker.health()[0] == 503, 30, worker)
        redis_proc = start_redis(port, data_dir)
        done = _rebuilt_and_caught_up(worker, kafka_bootstrap, ends, 2)
        wait_for("the rebuild of an idle stream", done, 120, worker)
        wait_for("/health ok again", lambda: worker.health()[0] == 200, 30, worker)
        report = compare_features(client, key_prefix, events)
        assert report.lost_orders == 0 and report.double_counted_orders == 0
        assert report.mismatches == [] and report.values_checked > 1000
        order_ids = [e.order_id for e in events if isinstance(e, Order)]
        assert missing_scores(client, key_prefix, order_ids) == []
    finally:
        worker.stop()
        client.close()
        _stop(redis_proc)


def test_epoch_marker_detects_lost_state(redis_client, key_prefix):
    marker = EpochMarker(redis_client, key_prefix)
    assert marker.state_lost()  # nothing written yet
    assert marker.state_lost()  # still lost until renewed
    marker.renew()
    assert not marker.state_lost()
    restarted = EpochMarker(redis_client, key_prefix)
    assert not restarted.state_lost()  # a restart over kept data adopts the marker
    assert restarted.epoch == marker.epoch

    redis_client.delete(marker.key)  # Redis lost its data
    assert marker.state_lost() and restarted.state_lost()
    marker.renew()  # the first worker to notice writes a new marker...
    assert restarted.state_lost()  # ...the other still sees a change and rebuilds its own partitions
    restarted.renew()
    assert restarted.epoch is not None and restarted.epoch == marker.epoch
    assert not marker.state_lost() and not restarted.state_lost()
    assert (marker.losses, restarted.losses) == (2, 1)


def test_epoch_marker_reports_redis_errors(key_prefix):
    errors: list[Exception] = []
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    marker = EpochMarker(dead, key_prefix, on_error=errors.append)
    with pytest.raises(redis.ConnectionError):
        marker.state_lost()
    assert len(errors) == 1 and isinstance(errors[0], redis.ConnectionError)
    dead.close()


async def _send(bootstrap: str, topic: str, events: list[Order | CustomerEvent]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        for e in events:
            await p.send_and_wait(topic, to_json(e), key=e.customer_id.encode())
    finally:
        await p.stop()


def test_duplicate_events_change_no_aggregate(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path):
    events = _events(seed=41, orders=600)
    orders = [e for e in events if isinstance(e, Order)]
    customer_events = [e for e in events if isinstance(e, CustomerEvent)]
    _produce_all(events, kafka_bootstrap, topic_names)
    worker, client = _worker(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path)
    try:
        worker.start()
        first = len(orders) + len(customer_events)
        wait_for("the stream processed", lambda: worker.processed() >= first, 120, worker)
        report = compare_features(client, key_prefix, events)
        assert report.mismatches == [] and report.values_checked > 1000
        store = feature_store(client, key_prefix)
        customers = sorted({e.customer_id for e in orders + customer_events})
        before = store.get_features_batch("customer", customers)

        day = 86_400_000
        again_orders = orders[::3]
        changed = [o.model_copy(update={"total": o.total + 1000.0}) for o in orders[1::7]]
        later = [o.model_copy(update={"event_time": o.event_time + 30 * day}) for o in orders[2::11]]
        again_events = customer_events[::3]
        later_events = [
            e.model_copy(update={"event_time": e.event_time + 30 * day}) for e in customer_events[1::7]
        ]
        asyncio.run(_send(kafka_bootstrap, topic_names["orders"], again_orders + changed + later))
        asyncio.run(_send(kafka_bootstrap, topic_names["events"], again_events + later_events))
        sent = len(again_orders) + len(changed) + len(later) + len(again_events) + len(later_events)
        wait_for("the duplicates processed", lambda: worker.processed() >= first + sent, 60, worker)

        after = store.get_features_batch("customer", customers)
        assert after == before
        assert compare_features(client, key_prefix, events).mismatches == []
        assert worker.metrics()["hanzo_duplicate_events_total"] >= len(again_orders) + len(changed) + len(
            later
        )
    finally:
        worker.stop()
        client.close()
