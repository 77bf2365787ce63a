"""The Prometheus rules: valid for promtool, unit-tested by promtool, and consistent with monitor.metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from hanzo.ml.monitor import Metrics

PROM_DIR = Path(__file__).resolve().parents[2] / "config" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
PROMETHEUS = PROM_DIR / "prometheus.yml"
METRIC_NAME = re.compile(r"\b(hanzo_[a-z0-9_]+)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: run `make tools` (installs Debian's prometheus package)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules():
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config():
    result = promtool("check", "config", str(PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist_with_severity_and_annotations():
    names = [r["alert"] for r in rules()]
    for required in (
        "FeatureDrift",
        "PredictionDrift",
        "ModelPerformanceDegraded",
        "ScoringLatencyHigh",
        "ConsumerLagHigh",
        "WorkerStalled",
        "DeadLettersRising",
        "FeatureStale",
    ):
        assert required in names
    assert len(names) == len(set(names))
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{rule['alert']} has no {key}"


def test_every_rule_is_tested_firing_and_not_firing():
    cases = [
        case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for rule in rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']} is never tested firing"
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']} is never tested not firing"


def test_metric_names_in_rules_and_tests_exist_in_metrics():
    exposed = Metrics(CollectorRegistry()).exposed_names()
    used_in_rules = {name for rule in rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used_in_rules, "no hanzo_ metric found in alerts.yml"
    assert used_in_rules <= exposed, used_in_rules - exposed
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    series = {s["series"].split("{")[0] for test in tests for s in test["input_series"]}
    assert series - {"up"} <= exposed, series - {"up"} - exposed
    declared = {doc.name for doc in Metrics(CollectorRegistry()).describe()}
    mentioned = {
        name
        for rule in rules()
        for text in rule["annotations"].values()
        for name in METRIC_NAME.findall(text)
    }
    assert mentioned <= exposed | declared, mentioned - exposed - declared
