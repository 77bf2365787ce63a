"""docker-compose.yml, the Dockerfile and the Grafana/Prometheus/Alertmanager files agree with the code.

Docker is not needed: the files are parsed and checked against the repository, the CLI and the metrics.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from prometheus_client import CollectorRegistry

from hanzo.ml.monitor import Metrics
from hanzo.ml.streams.cli import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: Services built from our Dockerfile (the hanzo-ml image).
HANZO = {name: s for name, s in SERVICES.items() if "build" in s}
GRAFANA = ROOT / "config" / "grafana"
METRIC_NAME = re.compile(r"\b(hanzo_[a-z0-9_]+)")


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (named volumes left out)."""
    mounts = []
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith(("./", "/", "../")):
            mounts.append((host, container))
    return mounts


def container_file(service: str, container_path: str) -> Path:
    """The repository file mounted at ``container_path`` in ``service`` (directories mounted whole too)."""
    for host, target in bind_mounts(SERVICES[service]):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / host / Path(container_path).relative_to(target)
    pytest.fail(f"{container_path} is not mounted into {service}")


def test_expected_services():
    assert {"kafka", "redis", "prometheus", "alertmanager", "grafana", "worker", "simulator"} <= set(SERVICES)
    assert set(HANZO) == {"worker", "simulator"}
    assert "KAFKA_PROCESS_ROLES" in SERVICES["kafka"]["environment"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in SERVICES


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_host_path_exists(service):
    for host, _ in bind_mounts(SERVICES[service]):
        assert host.startswith("./"), f"{service}: mount {host} must be inside the repository"
        assert (ROOT / host).exists(), f"{service}: {host} does not exist"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_ports_are_bound_to_loopback(service):
    for port in SERVICES[service].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{service}: port {port} is not bound to 127.0.0.1"


@pytest.mark.parametrize("service", sorted(HANZO))
def test_hanzo_commands_are_real_verbs(service):
    command = HANZO[service]["command"]
    verb = cli.commands.get(command[0])
    assert verb is not None, f"{service}: {command[0]!r} is not a hanzo-ml verb ({sorted(cli.commands)})"
    try:
        verb.make_context(command[0], list(command[1:]))
    except click.UsageError as exc:
        pytest.fail(f"{service}: `hanzo-ml {' '.join(command)}` does not parse: {exc}")


def test_worker_metrics_are_reachable_by_prometheus():
    worker = SERVICES["worker"]
    env = worker["environment"]
    assert env["HANZO_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 (inside the container network)
    port = int(env.get("HANZO_METRICS_PORT", 9464))
    prometheus = yaml.safe_load(container_file("prometheus", "/etc/prometheus/prometheus.yml").read_text())
    jobs = prometheus["scrape_configs"]
    targets = [t for job in jobs for sc in job["static_configs"] for t in sc["targets"]]
    assert f"worker:{port}" in targets
    alertmanagers = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"] and "alertmanager" in SERVICES


def test_prometheus_rule_files_are_mounted():
    config_path = "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(container_file("prometheus", config_path).read_text())
    assert config["rule_files"], "no rule files"
    for rule_file in config["rule_files"]:
        in_container = rule_file if rule_file.startswith("/") else f"/etc/prometheus/{rule_file}"
        host = container_file("prometheus", in_container)
        assert host == ROOT / "config" / "prometheus" / "alerts.yml"
        assert yaml.safe_load(host.read_text())["groups"]


def test_alertmanager_config_is_mounted_and_names_its_receivers():
    command = SERVICES["alertmanager"]["command"]
    path = next(c.split("=", 1)[1] for c in command if c.startswith("--config.file="))
    config = yaml.safe_load(container_file("alertmanager", path).read_text())
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(r["receiver"] in receivers for r in routes)


def test_dockerfile_copies_every_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    # hanzo.ml.features is the folder features/ (hanzo/ml/features links to it); hanzo.ml itself is hanzo/
    top_level = {p.split(".")[2] if p.count(".") >= 2 else "hanzo" for p in packages}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            sources = line.split()[1:-1]
            copied |= {s.rstrip("/") for s in sources}
    assert top_level <= copied, f"not copied: {sorted(top_level - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "hanzo-ml.json").read_text())


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board.get("annotations", {}).get("list", []) if "expr" in a]
    return exprs


def test_grafana_dashboard_metric_names_exist():
    exposed = Metrics(CollectorRegistry()).exposed_names()
    names = {name for expr in expressions(dashboard()) for name in METRIC_NAME.findall(expr)}
    assert names, "the dashboard queries no hanzo_ metric"
    assert names <= exposed, f"unknown metrics in the dashboard: {sorted(names - exposed)}"


def test_grafana_dashboard_covers_the_essentials():
    text = " ".join(expressions(dashboard()))
    for required in (
        "hanzo_events_processed_total",  # throughput
        "hanzo_scoring_latency_seconds_bucket",  # latency p99
        "hanzo_model_metric",
        "hanzo_drift_statistic",
        "hanzo_drift_alarms_total",
        "hanzo_drift_active",
        "hanzo_consumer_lag_messages",
        "hanzo_dead_letters_total",
    ):
        assert required in text, required
    assert "histogram_quantile(0.99" in text


def test_grafana_provisioning_is_consistent():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] in uids and p["targets"] for p in panels)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "hanzo-ml.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert container_file("grafana", f"{path}/hanzo-ml.json") == GRAFANA / "dashboards" / "hanzo-ml.json"
    container_file("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml")
    container_file("grafana", "/etc/grafana/provisioning/dashboards/hanzo-ml.yml")
