"""Registry behaviour on a real folder: round trips, versions, aliases, retention, diff, gate."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from river import linear_model, preprocessing

from hanzo.ml import registry
from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.registry import Registry, evaluate_gate
from hanzo.ml.registry.versions import sort_versions


def _trained_pipeline() -> object:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    rng = random.Random(7)
    for _ in range(200):
        x = {"clv": rng.gauss(100, 30), "days": rng.uniform(0, 90), "tickets": rng.randint(0, 5)}
        y = x["days"] > 45 or x["tickets"] > 3
        model.learn_one(x, y)
    return model


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert set(registry.__all__) == {
        "LOWER_IS_BETTER",
        "AliasEvent",
        "ArtifactStorage",
        "FileSystemStorage",
        "GateDecision",
        "ModelVersion",
        "Registry",
        "RegistryReader",
        "SemVer",
        "evaluate_gate",
    }


def test_round_trip_of_a_river_pipeline_predicts_identically(tmp_path: Path) -> None:
    model = _trained_pipeline()
    reg = Registry(tmp_path)
    mv = reg.register(
        model, "churn", version="1.2.3", metadata={"metrics": {"auc": 0.9}, "examples_learned": 200}
    )
    loaded, record = reg.load_version("churn", "1.2.3")
    rng = random.Random(11)
    for _ in range(50):
        x = {"clv": rng.gauss(100, 30), "days": rng.uniform(0, 90), "tickets": rng.randint(0, 5)}
        assert loaded.predict_proba_one(x) == model.predict_proba_one(x)  # type: ignore[attr-defined]
    assert record == mv
    assert mv.size == (tmp_path / "models/churn/versions/1.2.3/model.pkl").stat().st_size
    assert mv.created_at.tzinfo is not None
    assert mv.metadata["examples_learned"] == 200
    assert mv.metadata["parent_version"] is None
    assert set(mv.metadata["libraries"]) >= {"python", "river", "numpy"}
    with pytest.raises(Exception, match="frozen"):
        mv.version = "9.9.9"  # type: ignore[misc]


def test_latest_alias_and_explicit_loads(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for i, version in enumerate(["1.0.0", "1.1.0", "1.10.0", "1.2.0"]):
        reg.register({"i": i}, "demand", version=version)
    assert reg.load("demand") == {"i": 2}  # latest = highest version (1.10.0), not last registered
    assert reg.load("demand", "1.1.0") == {"i": 1}
    reg.promote("demand", "1.2.0")
    reg.set_alias("demand", "staging", "1.0.0", reason="canary")
    assert reg.load("demand", "production") == {"i": 3}
    assert reg.load("demand", "staging") == {"i": 0}
    assert reg.aliases("demand") == {"production": "1.2.0", "staging": "1.0.0"}
    assert reg.show("demand", "production").aliases == ("production",)
    assert reg.list_models() == ["demand"]
    assert [mv.version for mv in reg.list_versions("demand")] == ["1.0.0", "1.1.0", "1.2.0", "1.10.0"]


def test_unknown_name_or_version_lists_what_exists(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "fraud", version="2.0.0")
    reg.promote("fraud", "2.0.0")
    with pytest.raises(RegistryError, match=r"unknown model 'churn'; registered models: fraud"):
        reg.load("churn")
    with pytest.raises(
        RegistryError, match=r"no version or alias '3.0.0'.*versions: 2.0.0.*production=2.0.0"
    ):
        reg.load("fraud", "3.0.0")
    with pytest.raises(RegistryError, match="no version or alias 'staging'"):
        reg.load("fraud", "staging")


@pytest.mark.parametrize("name", ["../../etc", "a/b", "/etc/passwd", "Churn", "", "-x", "a" * 65, "a.b"])
def test_invalid_names_are_refused_with_the_rule(tmp_path: Path, name: str) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match=r"model name .* is invalid: use 1-64 characters"):
        reg.register(1, name, version="1.0.0")
    with pytest.raises(RegistryError, match="is invalid"):
        reg.load(name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3+", "1.2.3/../x", "../1.2.3"])
def test_invalid_versions_are_refused_with_the_rule(tmp_path: Path, version: str) -> None:
    with pytest.raises(
        RegistryError, match=r"version .* is invalid: use a semantic version MAJOR.MINOR.PATCH"
    ):
        Registry(tmp_path).register(1, "m", version=version)


def test_versions_are_immutable(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "m", version="1.0.0")
    with pytest.raises(RegistryError, match="already exists and versions are immutable"):
        reg.register(2, "m", version="1.0.0")
    assert reg.load("m", "1.0.0") == 1


def test_snapshot_versions_sort_past_9_99_999(tmp_path: Path) -> None:
    reg = Registry(tmp_path, keep_last=None)
    sequences = [1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 999_999, 1_000_000]
    versions = [f"1.2.3+snap.{s:06d}" for s in sequences]
    shuffled = versions[:]
    random.Random(3).shuffle(shuffled)
    for version in shuffled:
        reg.register(version, "m", version=version)
    reg.register("plain", "m", version="1.2.3")
    reg.register("rc", "m", version="1.2.3-rc.1")
    reg.register("next", "m", version="1.3.0")
    listed = [mv.version for mv in reg.list_versions("m")]
    assert listed == ["1.2.3-rc.1", "1.2.3", *versions, "1.3.0"]
    assert reg.next_snapshot_version("m", "1.3.0") == "1.3.0+snap.1000001"
    # Zero padding keeps plain string order right below a million snapshots.
    padded = [f"1.2.3+snap.{s:06d}" for s in range(1, 1200)]
    assert sorted(padded) == sort_versions(list(reversed(padded))) == padded


def test_next_snapshot_version_is_monotonic_and_never_reused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    handed = [reg.next_snapshot_version("m", "1.2.3") for _ in range(12)]
    assert handed[0] == "1.2.3+snap.000001"
    assert handed[-1] == "1.2.3+snap.000012"
    assert sort_versions(handed[::-1]) == handed
    mv = reg.register("x", "m")  # no version: next snapshot of the latest base (0.0.0 for a new model)
    assert mv.version == "0.0.0+snap.000013"
    reg.register("y", "m", version="1.2.3")
    reg.delete("m", "0.0.0+snap.000013")
    assert reg.register("z", "m").version == "1.2.3+snap.000014"
    assert reg.show("m", "latest").metadata["parent_version"] == "1.2.3"
    with pytest.raises(RegistryError, match="already has build metadata"):
        reg.next_snapshot_version("m", "1.2.3+build.5")


def test_promote_rollback_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for v in ["1.0.0", "1.1.0", "1.2.0"]:
        reg.register(v, "m", version=v)
        reg.promote("m", v, reason=f"ship {v}")
    assert reg.rollback("m", reason="bad auc").version == "1.1.0"
    assert reg.load("m", "production") == "1.1.0"
    assert reg.rollback("m").version == "1.0.0"  # walks further back, no ping-pong
    with pytest.raises(RegistryError, match="no earlier version to roll back to"):
        reg.rollback("m")
    with pytest.raises(RegistryError, match="has no alias 'staging'"):
        reg.rollback("m", alias="staging")
    events = reg.history("m")
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        ("promote", None, "1.0.0"),
        ("promote", "1.0.0", "1.1.0"),
        ("promote", "1.1.0", "1.2.0"),
        ("rollback", "1.2.0", "1.1.0"),
        ("rollback", "1.1.0", "1.0.0"),
    ]
    assert events[3].reason == "bad auc"
    assert all(e.alias == "production" and e.time.tzinfo is not None for e in events)
    reg.promote("m", "1.2.0")
    log = (tmp_path / "models/m/history.jsonl").read_bytes()
    assert log.count(b"\n") == 6
    assert [json.loads(line)["action"] for line in log.splitlines()][-1] == "promote"


def test_retention_keeps_last_n_and_every_aliased_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path, keep_last=3)
    reg.register(0, "m", version="1.0.0")
    reg.promote("m", "1.0.0")
    for i in range(1, 5):
        reg.register(i, "m")
    reg.set_alias("m", "staging", "1.0.0+snap.000002")
    reg.promote("m", "1.0.0+snap.000003")  # 1.0.0 no longer holds production, but it did once
    for i in range(5, 10):
        reg.register(i, "m")
    kept = [mv.version for mv in reg.list_versions("m")]
    assert kept == [
        "1.0.0",
        "1.0.0+snap.000002",
        "1.0.0+snap.000003",
        "1.0.0+snap.000007",
        "1.0.0+snap.000008",
        "1.0.0+snap.000009",
    ]
    assert not (tmp_path / "models/m/versions/1.0.0+snap.000001").exists()  # artifact and manifest gone
    assert reg.load("m", "1.0.0") == 0
    with pytest.raises(ConfigError, match="keep_last=0 is invalid"):
        Registry(tmp_path, keep_last=0)


def test_delete_refuses_alias_holder_unless_forced(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "m", version="1.0.0")
    reg.register(2, "m", version="2.0.0")
    reg.promote("m", "2.0.0")
    with pytest.raises(RegistryError, match="holds alias"):
        reg.delete("m", "2.0.0")
    reg.delete("m", "2.0.0", force=True)
    assert reg.aliases("m") == {}
    assert reg.history("m")[-1].action == "removed"
    assert [mv.version for mv in reg.list_versions("m")] == ["1.0.0"]
    reg.delete("m", "1.0.0")
    with pytest.raises(RegistryError, match="unknown model 'm'"):
        reg.list_versions("m")


def test_diff_reports_metadata_changes(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    base = {
        "metrics": {"auc": 0.81, "logloss": 0.5},
        "examples_learned": 1000,
        "features": ["a", "b"],
        "spec_hash": "abc",
        "offsets": {"labels": {"0": 10}},
    }
    reg.register(1, "m", version="1.0.0", metadata=base)
    newer = {
        **base,
        "metrics": {"auc": 0.86, "logloss": 0.5},
        "examples_learned": 2000,
        "offsets": {"labels": {"0": 20, "1": 5}},
    }
    del newer["spec_hash"]
    reg.register(2, "m", version="1.0.1", metadata=newer)
    d = reg.diff("m", "1.0.0", "1.0.1")
    assert d["from"] == "1.0.0" and d["to"] == "1.0.1"
    assert d["changed"]["metrics.auc"] == [0.81, 0.86]
    assert d["changed"]["examples_learned"] == [1000, 2000]
    assert d["changed"]["offsets.labels.0"] == [10, 20]
    assert d["changed"]["parent_version"] == [None, "1.0.0"]
    assert "artifact.sha256" in d["changed"]
    assert "metrics.logloss" not in d["changed"] and "features" not in d["changed"]
    assert d["added"] == {"offsets.labels.1": 5}
    assert d["removed"] == {"spec_hash": "abc"}


def test_metadata_must_be_plain_json(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="metadata of model 'm' is not plain JSON"):
        reg.register(1, "m", version="1.0.0", metadata={"when": object()})
    with pytest.raises(RegistryError, match="not plain JSON"):
        reg.register(1, "m", version="1.0.0", metadata={"metrics": {"auc": float("nan")}})


def test_evaluate_gate_threshold_semantics() -> None:
    ok = evaluate_gate(
        {"AUC": 0.9, "LogLoss": 0.3, "mae": 1.0}, {"auc": 0.85, "logloss": 0.4, "MAE": 1.0}, False
    )
    assert ok.passed and ok.reasons == []
    bad = evaluate_gate(
        {"auc": 0.9, "rmse": 2.5, "mape": 0.1}, {"auc": 0.95, "rmse": 2.0, "mape": 0.2, "recall": 0.5}, False
    )
    assert not bad.passed
    assert bad.reasons == [
        "auc 0.9 is below the minimum 0.95",
        "rmse 2.5 is above the maximum 2",
        "metric 'recall' is missing (have: ['auc', 'mape', 'rmse'])",
    ]
    drift = evaluate_gate({"auc": 0.99}, {"auc": 0.5}, drift_active=True)
    assert not drift.passed and "drift is active" in drift.reasons[0]
    assert not evaluate_gate({"auc": float("nan")}, {"auc": 0.5}, False).passed


def test_promote_if_gate(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "m", version="1.0.0", metadata={"metrics": {"auc": 0.9}})
    reg.register(2, "m", version="1.1.0", metadata={"metrics": {"auc": 0.8}})
    passed = reg.promote_if_gate("m", "1.0.0", {"auc": 0.85}, drift_active=False, reason="nightly")
    assert passed.passed
    assert reg.aliases("m") == {"production": "1.0.0"}
    failed = reg.promote_if_gate("m", "1.1.0", {"auc": 0.85}, drift_active=False)
    assert not failed.passed
    drifting = reg.promote_if_gate("m", "1.0.0", {"auc": 0.5}, drift_active=True)
    assert not drifting.passed
    assert reg.aliases("m") == {"production": "1.0.0"}
    events = reg.history("m")
    assert [e.action for e in events] == ["promote", "gate_rejected", "gate_rejected"]
    assert events[0].reason.startswith("nightly; gate passed: auc 0.9 >= 0.85")
    assert events[1].to_version == "1.1.0" and "auc 0.8 is below the minimum 0.85" in events[1].reason
    with pytest.raises(RegistryError, match="no earlier version"):  # a rejection never held the alias
        reg.rollback("m")


def test_an_append_cut_short_by_a_crash_does_not_break_the_alias_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "m", version="1.0.0")
    reg.register(2, "m", version="2.0.0")
    reg.promote("m", "1.0.0")
    log = tmp_path / "models/m/history.jsonl"
    with log.open("ab") as handle:
        handle.write(b'{"time": "2024-01-01T00:00:00Z", "alias": "produ')  # the crash
    reg.promote("m", "2.0.0")
    with caplog.at_level("WARNING", logger="hanzo.ml.registry.history"):
        events = reg.history("m")
    assert [(e.action, e.to_version) for e in events] == [("promote", "1.0.0"), ("promote", "2.0.0")]
    assert "line 2 is not a valid alias event" in caplog.text
    assert reg.rollback("m").version == "1.0.0"


def test_unpicklable_model_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="model 'm' of type function cannot be pickled"):
        reg.register(lambda x: x, "m", version="1.0.0")
    assert not (tmp_path / "models").exists()


def test_gate_reads_the_cumulative_metrics_of_a_learner_snapshot(tmp_path):
    reg = Registry(tmp_path)
    meta = {"metrics": {"cumulative": {"auc": 0.9}, "rolling": {"auc": 0.7}}}
    reg.register({"w": 1}, "fraud", "1.0.0+snap.000001", meta)
    assert reg.promote_if_gate("fraud", "1.0.0+snap.000001", {"auc": 0.85}, drift_active=False).passed
    assert reg.aliases("fraud")["production"] == "1.0.0+snap.000001"
    reg.register({"w": 2}, "fraud", "1.0.0+snap.000002", {"metrics": {"cumulative": {"auc": 0.8}}})
    assert not reg.promote_if_gate("fraud", "1.0.0+snap.000002", {"auc": 0.85}, drift_active=False).passed
    assert reg.aliases("fraud")["production"] == "1.0.0+snap.000001"
