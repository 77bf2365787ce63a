"""A real Prometheus server scrapes a running worker with our alert rules and sees FeatureDrift fire.

The shipped rules wait (``for: 5m``) before firing; promtool's unit tests check those durations. Here the
rules are loaded with ``for: 0s`` so the live path (worker metrics -> scrape -> rule -> alert API) is seen in
seconds; nothing else in the rule file changes.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hanzo.ml.streams.embedded import free_port
from hanzo.ml.streams.simulation import DriftSpec, Simulator, SimulatorConfig, produce
from tests.chaos_support import worker_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def test_feature_drift_fires_through_prometheus(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus not found: run `make tools` (installs Debian's prometheus package)"
    n_orders = 6000
    sim = Simulator(
        SimulatorConfig(
            seed=5,
            orders=n_orders,
            customers=400,
            orders_per_day=600,
            browse_events_per_order=0.0,
            drift=(DriftSpec(at_order=3000, kind="feature_shift", magnitude=4.0),),
        )
    )
    history = list(sim.events())
    topics = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }

    web_port, metrics_port, prom_port = free_port(), free_port(), free_port()
    env = worker_env(
        kafka_bootstrap,
        redis_url,
        topic_names,
        key_prefix,
        tmp_path / "registry",
        tmp_path / "state",
        HANZO_WEB_PORT=str(web_port),
        HANZO_METRICS_PORT=str(metrics_port),
    )
    rules = (ROOT / "config/prometheus/alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(re.sub(r"for: \d+[smh]", "for: 0s", rules))
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        f"  - job_name: hanzo-ml\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    worker_log, prom_log = tmp_path / "worker.log", tmp_path / "prometheus.log"
    with worker_log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hanzo.ml.streams.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    with prom_log.open("wb") as out:
        prom = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",  # noqa: S603
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        asyncio.run(produce(history, kafka_bootstrap, topics))
        firing: list[dict] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not firing:
            assert worker.poll() is None, worker_log.read_text()[-3000:]
            assert prom.poll() is None, prom_log.read_text()[-3000:]
            try:
                alerts = _get_json(f"http://127.0.0.1:{prom_port}/api/v1/alerts")["data"]["alerts"]
            except OSError:
                alerts = []
            firing = [
                a for a in alerts if a["labels"]["alertname"] == "FeatureDrift" and a["state"] == "firing"
            ]
            time.sleep(1)
        assert firing, f"FeatureDrift never fired\n{worker_log.read_text()[-3000:]}"
        assert firing[0]["labels"]["model"] == "fraud_detection"
        up = _get_json(f"http://127.0.0.1:{prom_port}/api/v1/query?query=up")["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        for proc in (prom, worker):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
