"""The product repartition agent in a real Faust worker process, on a real broker and Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from hanzo.ml.features import FeatureStore, RedisOnlineStore
from hanzo.ml.schemas.events import Order
from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation.config import SimulatorConfig
from hanzo.ml.streams.simulation.generator import Simulator
from hanzo.ml.streams.simulation.producer import produce
from hanzo.ml.streams.topics import ensure_topics

pytestmark = pytest.mark.integration

MIN = 60_000

WORKER = """
import sys
import faust
import redis
from hanzo.ml.features import FeatureStore, RedisOnlineStore
from hanzo.ml.streams.product_agent import add_product_agent

bootstrap, redis_url, prefix, orders, app_id, datadir, web_port = sys.argv[1:]
app = faust.App(
    app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=datadir, broker_session_timeout=6,
    broker_heartbeat_interval=2, web_port=int(web_port), web_bind="127.0.0.1", web_host="127.0.0.1",
    topic_partitions=2, producer_acks=-1,
)
store = FeatureStore(backend=RedisOnlineStore(redis.Redis.from_url(redis_url), prefix))
add_product_agent(app, store, orders, batch_size=200, within_s=0.2)
sys.argv = ["product-worker", "worker", "--loglevel", "warn", "--web-port", web_port]
app.main()
"""


def test_units_sold_per_product_through_the_repartition(
    kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, key_prefix: str,
    topic_names: dict[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    sim = Simulator(SimulatorConfig(seed=5, orders=400, customers=80, products=25))
    events = list(sim.events())
    orders = [e for e in events if isinstance(e, Order)]
    topic = topic_names["orders"]
    asyncio.run(ensure_topics(kafka_bootstrap, {topic: 2}))
    bad = [b"{not json", b'{"kind": "order", "order_id": "x"}']
    kinds = {"order": topic, "customer_event": topic_names["events"], "label": topic_names["labels"]}
    asyncio.run(produce(orders, kafka_bootstrap, kinds, partitions=2))

    async def send_bad() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in bad:
                await producer.send_and_wait(topic, value, key=b"c1")
        finally:
            await producer.stop()

    asyncio.run(send_bad())

    expected_units: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for o in orders:
        for item in o.items:
            expected_units[item.product_id].append((o.event_time, item.quantity))
    latest = {p: max(t for t, _ in v) for p, v in expected_units.items()}

    def want(pid: str) -> float:
        hi = latest[pid] // (15 * MIN)
        return float(sum(q for t, q in expected_units[pid] if hi - 96 < t // (15 * MIN) <= hi))

    log = tmp_path / "worker.log"
    app_id = f"products-{key_prefix.rstrip(':')}"
    argv = [
        sys.executable,
        "-c",
        WORKER,
        kafka_bootstrap,
        redis_url,
        key_prefix,
        topic,
        app_id,
        str(tmp_path),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, str(free_port())], stdout=out, stderr=subprocess.STDOUT)
    store = FeatureStore(backend=RedisOnlineStore(redis_client, key_prefix))
    products = sorted(expected_units)
    try:
        deadline = time.monotonic() + 120
        got: list[float | None] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            rows = store.get_features_batch("product", products, features=["units_sold_24h"])
            got = [r["units_sold_24h"] for r in rows]
            if got == [want(p) for p in products]:
                break
            time.sleep(1)
        assert got == [want(p) for p in products], log.read_text()[-3000:]
        orders_24h = store.get_features_batch("product", products, features=["product_orders_24h"])
        assert sum(r["product_orders_24h"] or 0 for r in orders_24h) > len(products)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
