"""The walking skeleton end to end: real broker, real Redis, the worker as its own process.

Produces a few thousand simulated orders with their labels, runs ``hanzo-ml worker`` and checks what a
shop would check: every order scored, features equal to our own recomputation, the model learned,
snapshots with metadata, metrics exposed, bad input dead-lettered, re-delivery changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hanzo.ml.features import EventRecord, FeatureStore, InMemoryOnlineStore, RedisOnlineStore
from hanzo.ml.features.windows import default_bucket_ms
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import CustomerEvent, Label, Order
from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import _read_topic, scrape, worker_env

pytestmark = pytest.mark.integration

N_ORDERS = 3000


def wait_for(what: str, predicate, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def expected_customer_features(orders: list[Order], upto: int) -> dict[str, float]:
    """Our own recomputation of the customer's features as of orders[upto] (in-order arrival)."""
    seen = orders[: upto + 1]
    t = seen[-1].event_time

    def in_window(ts: int, window_ms: int) -> bool:
        b = default_bucket_ms(window_ms)
        return ts // b > t // b - window_ms // b

    h, d = 3_600_000, 86_400_000
    last30 = [o.total for o in seen if in_window(o.event_time, 30 * d)]
    prev = seen[-2].event_time if len(seen) > 1 else None
    return {
        "orders_1h": float(sum(in_window(o.event_time, h) for o in seen)),
        "orders_24h": float(sum(in_window(o.event_time, d) for o in seen)),
        "spend_24h": sum(o.total for o in seen if in_window(o.event_time, d)),
        "mean_order_value_30d": sum(last30) / len(last30),
        "lifetime_spend": sum(o.total for o in seen),
        "seconds_since_last_order": (t - prev) / 1000 if prev is not None else -1.0,
    }


@pytest.fixture
def history() -> list:
    sim = Simulator(
        SimulatorConfig(
            seed=11,
            orders=N_ORDERS,
            customers=300,
            orders_per_day=400,
            browse_events_per_order=1.0,
            chargeback_delay_days=(0.5, 3.0),
            settle_delay_days=(0.5, 2.0),
            fraud_rate=0.05,
        )
    )
    return list(sim.events())


def test_worker_end_to_end(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path, history):
    orders = [e for e in history if isinstance(e, Order)]
    labels = [e for e in history if isinstance(e, Label)]
    assert len(orders) == N_ORDERS
    topics = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }
    asyncio.run(produce(history, kafka_bootstrap, topics))

    web_port, metrics_port = free_port(), free_port()
    registry_dir = tmp_path / "registry"
    env = worker_env(
        kafka_bootstrap,
        redis_url,
        topic_names,
        key_prefix,
        registry_dir,
        tmp_path / "state",
        HANZO_WEB_PORT=str(web_port),
        HANZO_METRICS_PORT=str(metrics_port),
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hanzo.ml.streams.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    client = redis.Redis.from_url(redis_url)
    try:

        def n_scores() -> int:
            return sum(1 for _ in client.scan_iter(match=f"{key_prefix}score:fraud_detection:*", count=5000))

        wait_for("every order scored", lambda: n_scores() == N_ORDERS, 120, proc, log)
        wait_for(
            "every label learned",
            lambda: scrape(metrics_port)["hanzo_labels_learned_total"] >= len(labels),
            120,
            proc,
            log,
        )

        # 1. every order has a score record with model, version and time
        for o in orders[:: max(1, N_ORDERS // 50)]:
            rec = json.loads(client.get(f"{key_prefix}score:fraud_detection:{o.order_id}"))
            assert (
                0.0 <= rec["score"] <= 1.0 and rec["model"] == "fraud_detection" and rec["scored_at_ms"] > 0
            )

        # 1b. scoring.write_topic: the same records on the scores topic, keyed by the order
        published = [json.loads(v) for v in asyncio.run(_read_topic(kafka_bootstrap, topic_names["scores"]))]
        assert {p["subject"] for p in published if p["model"] == "fraud_detection"} == {
            o.order_id for o in orders
        }
        assert all(0.0 <= p["score"] <= 1.0 and "version" in p and p["scored_at_ms"] > 0 for p in published)

        # 2. the vector scored for an order equals our own recomputation from the produced events
        by_customer: dict[str, list[Order]] = defaultdict(list)
        for o in orders:
            by_customer[o.customer_id].append(o)
        busiest = sorted(by_customer, key=lambda c: -len(by_customer[c]))[:10]
        checked = 0
        for cid in busiest:
            cust_orders = by_customer[cid]
            for i in range(0, len(cust_orders), 3):
                stored = json.loads(client.get(f"{key_prefix}x:fraud_detection:{cust_orders[i].order_id}"))[
                    "x"
                ]
                for name, value in expected_customer_features(cust_orders, i).items():
                    assert stored[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (cid, i, name)
                    checked += 1
        assert checked > 100

        # 2b. product features: the batch path applies every order to each product it holds and every
        # page view to its product; they equal the in-memory store fed the same events
        store = FeatureStore(backend=RedisOnlineStore(client, key_prefix=key_prefix))
        products, product_names, want = expected_product_features(history)
        wait_for(
            "product features",
            lambda: _close_rows(store.get_features_batch("product", products, features=product_names), want),
            60,
            proc,
            log,
        )
        assert sum(row["product_orders_24h"] for row in want) > len(products)
        assert sum(row["product_views_24h"] for row in want) > 0  # page views reach their product

        # 3. the model learned the simulator's signal (progressive AUC, predict-then-learn)
        m = scrape(metrics_port)
        cumulative_auc = _metric(metrics_port, "auc", "cumulative")
        assert cumulative_auc > 0.7

        # 4. snapshots with metadata
        # snapshots are written in a thread after the batch that crossed `every_examples`
        wait_for(
            "a snapshot",
            lambda: len(Registry(registry_dir).list_versions("fraud_detection")) >= 1,
            30,
            proc,
            log,
        )
        versions = Registry(registry_dir).list_versions("fraud_detection")
        # every snapshot went through the promotion gate: promoted, or recorded as rejected with the reason
        wait_for(
            "a gate decision",
            lambda: len(Registry(registry_dir).history("fraud_detection")) >= 1,
            30,
            proc,
            log,
        )
        history = Registry(registry_dir).history("fraud_detection")
        aliases = Registry(registry_dir).aliases("fraud_detection")
        promoted = [e.to_version for e in history if e.action == "promote"]
        assert all(e.action in ("promote", "gate_rejected") and e.reason for e in history)
        if promoted:
            assert aliases["production"] == promoted[-1]
        else:
            assert "production" not in aliases
        meta = versions[-1].metadata
        assert meta["examples_learned"] >= 1000
        assert "auc" in meta["metrics"]["cumulative"]
        assert sum(meta["offsets"].values()) > 0
        learner = Registry(registry_dir).load("fraud_detection", "latest")
        assert (
            0.0
            <= learner.score(
                json.loads(client.get(f"{key_prefix}x:fraud_detection:{orders[-1].order_id}"))["x"]
            )
            <= 1.0
        )

        # 5. /metrics shows the counters
        assert m[f"hanzo_events_processed_total|topic={topic_names['orders']}"] == N_ORDERS
        assert m["hanzo_scoring_latency_seconds_count"] >= N_ORDERS

        # 6. malformed input goes to the dead-letter topic; the worker keeps running
        bad = [b"{not json", b'{"kind":"order","order_id":"x"}', b"\xff\xfe"]
        asyncio.run(_send(kafka_bootstrap, topic_names["orders"], bad))
        wait_for(
            "dead letters counted",
            lambda: scrape(metrics_port)["hanzo_dead_letters_total"] >= 3,
            60,
            proc,
            log,
        )
        letters = asyncio.run(_read_all(kafka_bootstrap, topic_names["dead-letters"], 3))
        reasons = sorted(json.loads(v)["reason"] for v in letters)
        assert reasons == ["malformed_json", "not_utf8", "schema"]

        # 7. producing the same orders again changes no feature
        names = [f.name for f in store.list_features() if f.entity == "customer"]
        before_features = store.get_features_batch(entity="customer", ids=busiest, features=names)
        processed = scrape(metrics_port)[f"hanzo_events_processed_total|topic={topic_names['orders']}"]
        asyncio.run(produce(orders, kafka_bootstrap, topics))
        wait_for(
            "re-delivered orders processed",
            lambda: (
                scrape(metrics_port)[f"hanzo_events_processed_total|topic={topic_names['orders']}"]
                >= processed + N_ORDERS
            ),
            120,
            proc,
            log,
        )
        after_features = store.get_features_batch(entity="customer", ids=busiest, features=names)
        assert before_features == after_features
        products_after = store.get_features_batch("product", products, features=product_names)
        assert _close_rows(products_after, want)  # applied again: fenced or deduped by event id
        assert all(f["orders_lifetime"] > 0 for f in before_features)
        assert scrape(metrics_port)["hanzo_duplicate_events_total"] >= N_ORDERS
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        client.close()


def expected_product_features(events: list) -> tuple[list[str], list[str], list[dict[str, float | None]]]:
    """Products, the product feature names and their values: the in-memory store applying the events."""
    memory = FeatureStore(backend=InMemoryOnlineStore())
    names = [f.name for f in memory.list_features() if f.entity == "product"]
    records = [EventRecord(e) for e in events if isinstance(e, Order | CustomerEvent)]
    results = memory.apply_batch("product", records)
    products = sorted({r.entity_id for r in results})
    return products, names, memory.get_features_batch("product", products, features=names)


def _close_rows(got: list[dict[str, float | None]], want: list[dict[str, float | None]]) -> bool:
    return all(
        g.keys() == w.keys()
        and all(
            (g[k] is None) == (w[k] is None) and (w[k] is None or math.isclose(g[k], w[k], rel_tol=1e-9))
            for k in w
        )
        for g, w in zip(got, want, strict=True)
    )


def _metric(port: int, metric: str, window: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for fam in text_string_to_metric_families(r.read().decode()):
            for s in fam.samples:
                if (
                    s.name == "hanzo_model_metric"
                    and s.labels.get("metric") == metric
                    and s.labels.get("window") == window
                ):
                    return s.value
    raise AssertionError(f"no hanzo_model_metric for {metric}/{window}")


async def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        for v in values:
            await p.send_and_wait(topic, v, key=b"bad")
    finally:
        await p.stop()


async def _read_all(bootstrap: str, topic: str, n: int) -> list[bytes]:
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await c.start()
    out: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for rs in (await c.getmany(timeout_ms=500)).values():
                out.extend(r.value for r in rs)
    finally:
        await c.stop()
    return out
