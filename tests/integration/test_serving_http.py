"""The serving views over HTTP: a Faust worker process with a real broker, real Redis and a registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from river import linear_model, preprocessing

from hanzo.ml.features import EventRecord, FeatureStore, RedisOnlineStore
from hanzo.ml.learners.keys import score_key
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import Order, OrderItem
from hanzo.ml.streams.embedded import free_port

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
FEATURES = ["orders_24h", "spend_24h", "lifetime_spend", "order_total"]
STORED = FEATURES[:3]


def order(oid: str, customer: str, total: float, t: int) -> Order:
    return Order(order_id=oid, customer_id=customer, event_time=t, total=total, currency="EUR",
                 items=[OrderItem(product_id="p1", category="books", quantity=1, unit_price=total)],
                 payment_method="card", billing_country="DE", shipping_country="DE", channel="web")


def trained(scale: float) -> OnlineLearner:
    learner = OnlineLearner("fraud", preprocessing.StandardScaler() | linear_model.LogisticRegression())
    for i in range(200):
        total = 10.0 + (i % 20) * 25.0
        x = {"orders_24h": float(i % 5), "spend_24h": total * (i % 5), "lifetime_spend": 100.0 + i,
             "order_total": total}
        learner.learn_one(x, (total * scale) > 250.0)
    return learner


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json; charset=utf-8"
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"] == "application/json; charset=utf-8"
        return exc.code, json.loads(exc.read())


@pytest.fixture(params=["async-reads", "sync-reads"])
def server(
    request: pytest.FixtureRequest, kafka_bootstrap: str, redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    registry = Registry(tmp_path / "registry")
    v1 = registry.register(trained(1.0), "fraud", version="1.0.0", metadata={"features": FEATURES})
    registry.promote("fraud", v1.version)
    port = free_port()
    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "bench.serving_server", "--bootstrap", kafka_bootstrap,
            "--redis-url", redis_url, "--key-prefix", key_prefix,
            "--registry-dir", str(tmp_path / "registry"),
            "--model", "fraud", "--web-port", str(port), "--app-id", f"serving-{key_prefix.strip(':')}",
            "--datadir", str(tmp_path / "faust"), "--every-s", "0.2"]
    if request.param == "sync-reads":
        argv.append("--sync-reads")
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server died:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"server not ready:\n{log.read_text()[-3000:]}"
            try:
                status, body = call("GET", f"{base}/models")
                if status == 200 and body["models"]:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        yield {"base": base, "registry": registry, "log": log}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_serving_views(server: dict[str, Any], redis_client: Any, key_prefix: str) -> None:
    base = server["base"]
    store = FeatureStore(backend=RedisOnlineStore(redis_client, key_prefix=key_prefix))
    store.apply_batch("customer", [EventRecord(order(f"o{i}", "c1", 10.0 * (i + 1), T0 + i * 60_000))
                                   for i in range(4)])

    # GET /models
    status, body = call("GET", f"{base}/models")
    assert status == 200
    (fraud,) = body["models"]
    assert (fraud["name"], fraud["version"], fraud["alias"], fraud["features"]) == (
        "fraud", "1.0.0", "production", FEATURES)
    assert fraud["stored_features"] == STORED

    # GET /scores/{model}/{subject}: the record the worker wrote, 404 when absent
    record = {"score": 0.25, "model": "fraud", "version": "1.0.0", "examples": 7,
              "scored_at_ms": T0, "event_time_ms": T0}
    redis_client.set(score_key("fraud", "o42", key_prefix), json.dumps(record))
    assert call("GET", f"{base}/scores/fraud/o42") == (200, record)
    status, body = call("GET", f"{base}/scores/fraud/o_missing")
    assert status == 404 and body["error"] == "not_found" and "'o_missing'" in body["detail"]

    # POST /predict/{model}: stored features from Redis, request values on top, the served model's score
    status, body = call("POST", f"{base}/predict/fraud", b'{"customer_id": "c1", "order_total": 120.0}')
    assert status == 200, body
    assert body["features"] == {"orders_24h": 4.0, "spend_24h": 100.0, "lifetime_spend": 100.0,
                                "order_total": 120.0}
    assert body["score"] == pytest.approx(trained(1.0).score(body["features"]))
    assert (body["model"], body["version"], body["entity_id"]) == ("fraud", "1.0.0", "c1")
    assert body["cached"] is False
    status, again = call("POST", f"{base}/predict/fraud", b'{"customer_id": "c1", "order_total": 120.0}')
    assert status == 200 and again["cached"] is True and again["score"] == body["score"]

    # errors: JSON bodies with proper codes
    status, body = call("POST", f"{base}/predict/frod", b'{"customer_id": "c1"}')
    assert status == 404 and body["error"] == "unknown_model"
    assert "'frod'" in body["detail"] and "served models: fraud" in body["detail"]
    for bad, words in [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"customer_id": "c1", "order_total": NaN}', "not a finite number"),
        (b'{"customer_id": "c1", "order_total": 1e999}', "not a finite number"),
        (b'{"order_total": 3.0}', "customer_id"),
    ]:
        status, body = call("POST", f"{base}/predict/fraud", bad)
        assert status == 400, (bad, body)
        assert body["error"] == "bad_request" and words in body["detail"], (bad, body)

    # promote a new version: the worker follows the alias and answers with it
    registry: Registry = server["registry"]
    v2 = registry.register(trained(0.4), "fraud", version="1.1.0", metadata={"features": FEATURES})
    registry.promote("fraud", v2.version)
    deadline = time.monotonic() + 20
    while call("GET", f"{base}/models")[1]["models"][0]["version"] != "1.1.0":
        assert time.monotonic() < deadline, server["log"].read_text()[-3000:]
        time.sleep(0.1)
    status, body = call("POST", f"{base}/predict/fraud", b'{"customer_id": "c1", "order_total": 120.0}')
    assert status == 200 and body["version"] == "1.1.0" and body["cached"] is False
    assert body["score"] == pytest.approx(trained(0.4).score(body["features"]))
