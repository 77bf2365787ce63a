"""A real worker with ``drift_response: challenger`` answers a concept change by promoting a challenger.

The scenario is the one of ``tests/drift_support.py``: the simulator injects a concept
change (fraudsters switch to gift cards through the marketplace) at a known order; the pipeline is the
shipped fraud pipeline with a Hoeffding tree (a model that does not forget, the case a challenger from the
drift point is for) and a short comparison window. After the change the monitor's loss ADWIN alarms, a
challenger trains in shadow, wins, and is registered and promoted with a reason naming the drift; orders
scored afterwards carry the promoted version.

The worker learns labels in the order they arrive, and a label whose order is not scored yet waits and is
learned later, so a live stream would make the order of learning (and with it the alarm and the trial)
depend on timing. The test removes that: every topic has one partition, all orders are produced and scored
first, and only then the labels, so the worker learns them in exactly the order of the in-memory replay.
It then checks that the worker decided what the replay decides: the same comparison scores at the first
promotion, to float rounding.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry

from hanzo.ml.learners.keys import score_key
from hanzo.ml.monitor import Metrics, Monitor, MonitorStatus
from hanzo.ml.registry import Registry
from hanzo.ml.registry.records import AliasEvent
from hanzo.ml.schemas.events import Label, Order
from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import scrape, worker_env
from tests.drift_support import (
    CHALLENGER,
    CHANGE_AT,
    run_replay,
    scenario_config,
    spec_with,
)

pytestmark = pytest.mark.integration

MODEL = "fraud_detection"


def _pipeline(path: Path) -> Path:
    data = spec_with("challenger", **CHALLENGER).model_dump(mode="json")
    data["snapshots"].update(every_examples=1_000_000, every_seconds=3600)  # only the response registers
    path.write_text(yaml.safe_dump(data))
    return path


def _health(port: str) -> object:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:  # noqa: S310
            return json.loads(r.read())
    except OSError as exc:
        return exc


def _drift_promotions(registry: Registry) -> list[AliasEvent]:
    if MODEL not in registry.list_models():
        return []
    return [e for e in registry.history(MODEL) if e.action == "promote" and "drift" in e.reason]


def _learned(metrics_port: str) -> float:
    try:
        return scrape(int(metrics_port)).get(f"hanzo_labels_learned_total|model={MODEL}", 0.0)
    except OSError:
        return 0.0


def test_challenger_is_promoted_after_a_concept_change(
    kafka_bootstrap, redis_url, redis_client: redis.Redis, topic_names, key_prefix, tmp_path
):
    events = list(Simulator(scenario_config()).events())
    stream = [e for e in events if not isinstance(e, Label)]
    labels = [e for e in events if isinstance(e, Label)]
    orders = [e for e in stream if isinstance(e, Order)]
    kinds = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }
    web_port, metrics_port = str(free_port()), str(free_port())
    env = worker_env(
        kafka_bootstrap,
        redis_url,
        topic_names,
        key_prefix,
        tmp_path / "registry",
        tmp_path / "state",
        HANZO_WEB_PORT=web_port,
        HANZO_METRICS_PORT=metrics_port,
        HANZO_PARTITIONS="1",  # one partition per topic: the worker reads labels in the order produced
    )
    spec_path = _pipeline(tmp_path / "fraud_challenger.yaml")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hanzo.ml.streams.cli", "worker", "--pipeline", str(spec_path)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    registry = Registry(tmp_path / "registry")

    def _status() -> MonitorStatus:
        return Monitor.read_status(redis_client, MODEL, key_prefix=key_prefix)

    def wait_for(what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert worker.poll() is None, f"worker exited\n{log.read_text()[-3000:]}"
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"{what} not within {timeout:.0f}s; /health {_health(web_port)}\n{tail}")
            time.sleep(0.5)

    try:
        asyncio.run(produce(stream, kafka_bootstrap, kinds, partitions=1))
        # the reference: the in-memory replay of the same scenario, run while the worker scores
        reference = run_replay(
            spec_with("challenger", **CHALLENGER),
            Registry(tmp_path / "replay"),
            Metrics(CollectorRegistry()),
            until_promoted=True,
        )[2]
        expected = next((d for d in reference.actions if d.action == "promote"), None)
        assert expected is not None, f"the in-memory replay promoted nothing: {reference.actions}"
        keys = [score_key(MODEL, o.order_id, key_prefix) for o in orders]
        wait_for("every order scored", lambda: redis_client.exists(*keys) == len(keys), timeout=180)

        asyncio.run(produce(labels, kafka_bootstrap, kinds, partitions=1))
        wait_for("every label learned", lambda: _learned(metrics_port) >= len(labels), timeout=180)
        assert _learned(metrics_port) == len(labels)  # each learned once

        promotions = _drift_promotions(registry)
        assert promotions, f"no drift promotion; /health {_health(web_port)}\n{log.read_text()[-3000:]}"
        first = registry.show(MODEL, promotions[0].to_version).metadata
        assert first["examples_learned"] > CHANGE_AT  # the challenger answered the injected change
        # the worker decided exactly what the in-memory replay decides (same examples in the same order)
        response = first["drift_response"]
        assert (response["n_compared"], response["champion_score"], response["challenger_score"]) == (
            expected.n_compared,
            pytest.approx(expected.champion_score, rel=1e-9),
            pytest.approx(expected.challenger_score, rel=1e-9),
        )
        assert response["challenger_score"] < response["champion_score"]
        last = promotions[-1]
        assert registry.aliases(MODEL)["production"] == last.to_version
        samples = scrape(int(metrics_port))
        assert samples["hanzo_drift_responses_total|action=promote"] == len(promotions)
        # one loss alarm is counted once: the series says what the published monitor status says
        wait_for("the monitor status of every label", lambda: _status().n_labelled == len(labels), timeout=60)
        loss_alarms = scrape(int(metrics_port))["hanzo_drift_alarms_total|feature=(loss)"]
        assert loss_alarms == _status().loss_adwin.n_alarms >= 1

        # orders scored from now on are scored by the promoted challenger
        after = SimulatorConfig(seed=2, orders=30, customers=20, browse_events_per_order=0, id_prefix="after")
        late = [e for e in Simulator(after).events() if isinstance(e, Order)]
        asyncio.run(produce(late, kafka_bootstrap, kinds, partitions=1))
        keys = [score_key(MODEL, o.order_id, key_prefix) for o in late]
        wait_for("the later orders scored", lambda: redis_client.exists(*keys) == len(keys), timeout=60)
        versions = {json.loads(redis_client.get(k) or b"{}").get("version") for k in keys}
        assert versions == {last.to_version}
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
