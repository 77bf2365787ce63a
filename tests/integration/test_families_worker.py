"""A real worker with all six shipped pipelines on a simulated stream writes every key a shop reads."""

from __future__ import annotations

import asyncio
import heapq
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
from hanzo.ml.streams.simulation.shop_events import shop_events
from tests.chaos_support import scrape, wait_for, worker_env

pytestmark = pytest.mark.integration

PIPELINES = (
    "fraud_detection",
    "churn_prediction",
    "demand_forecasting",
    "recommendations",
    "price_optimization",
    "search_ranking",
)


def test_worker_runs_all_six_pipelines(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path: Path):
    orders = Simulator(
        SimulatorConfig(seed=5, orders=600, customers=150, orders_per_day=150, fraud_rate=0.05)
    )
    start = orders.config.start_time_ms
    shop = ShopSimulator(
        ShopSimulatorConfig(
            seed=5,
            products=40,
            customers=80,
            days=5,
            demand_products=3,
            sessions=150,
            purchases=150,
            visits=400,
            start_time_ms=start,
        )
    )
    floor = shop_events(shop)
    stream = list(heapq.merge(orders.events(), floor, key=lambda e: e.event_time))
    topics = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }
    asyncio.run(produce(stream, kafka_bootstrap, topics))

    metrics_port = free_port()
    env = worker_env(
        kafka_bootstrap,
        redis_url,
        topic_names,
        key_prefix,
        tmp_path / "registry",
        tmp_path / "state",
        HANZO_WEB_PORT=str(free_port()),
        HANZO_METRICS_PORT=str(metrics_port),
    )
    args = [a for p in PIPELINES for a in ("--pipeline", p)]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hanzo.ml.streams.cli", "worker", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    kinds = ("score:fraud_detection:", "score:churn_prediction:", "forecast:", "reco:", "price:", "rank:")
    try:
        deadline = time.monotonic() + 90
        missing = list(kinds)
        while missing and time.monotonic() < deadline:
            assert proc.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
            missing = [
                k for k in kinds if next(r.scan_iter(match=f"{key_prefix}{k}*", count=1000), None) is None
            ]
            time.sleep(0.5)
        assert not missing, f"no keys {missing}\n{log.read_text()[-3000:]}"

        def latency_matches_predictions() -> bool:  # each scoring model's own latency, one per prediction
            m = scrape(metrics_port)
            return all(
                m[f"hanzo_scoring_latency_seconds_count|model={model}"]
                == m[f"hanzo_predictions_total|model={model}"]
                > 0
                for model in ("fraud_detection", "churn_prediction")
            )

        wait_for("the scoring latency of each model", latency_matches_predictions, 60)

        # read them as the README documents
        pid = shop.demand_products[0]
        deadline = time.monotonic() + 30
        while r.get(f"{key_prefix}forecast:{pid}") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        forecast = json.loads(r.get(f"{key_prefix}forecast:{pid}") or "null")
        assert len(forecast) == 7 and all(v >= 0 for v in forecast)

        buyer = next(e.customer_id for e in floor if e.kind == "order")
        deadline = time.monotonic() + 30
        while r.get(f"{key_prefix}reco:{buyer}") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        reco = json.loads(r.get(f"{key_prefix}reco:{buyer}") or "null")
        assert 0 < len(reco) <= 10 and len(set(reco)) == len(reco)

        priced = shop.experiment_products[0]
        price = json.loads(r.get(f"{key_prefix}price:{priced}") or "null")
        assert price["multiplier"] in shop.config.price_points
        assert price["price"] == round(shop.products[priced].list_price * price["multiplier"], 2)

        query = next(e.query for e in floor if e.kind == "customer_event" and e.type == "search")
        deadline = time.monotonic() + 30
        while r.get(f"{key_prefix}rank:{query}") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        ranked = json.loads(r.get(f"{key_prefix}rank:{query}") or "null")
        assert ranked and set(ranked) <= set(shop.candidates(query))
        assert r.ttl(f"{key_prefix}rank:{query}") > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
