"""Drift responses on real concept changes from River's synthetic generators, and a real Registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from river import linear_model, metrics, tree
from river.datasets import synth

from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.monitor import LossADWIN
from hanzo.ml.monitor.response import (
    AlertResponse,
    ChallengerResponse,
    Decision,
    RollbackResponse,
    make_response,
)
from hanzo.ml.registry import Registry

CHANGE_AT = 5000
MARGIN = 0.05


def run_challenger(
    before: int, after: int, seed: int, force_alarm_at: int | None = None, n_after: int = 5000
) -> tuple[list[tuple[int, Decision]], int | None]:
    """Champion learns Agrawal `before`, then the concept becomes `after`; drift comes from a real ADWIN.

    Returns the non-trivial decisions and the example of the first drift alarm.
    """
    champion = tree.HoeffdingTreeClassifier()
    response = ChallengerResponse(
        champion, metric=metrics.Accuracy, window=1000, min_examples=500, margin=MARGIN, max_examples=5000
    )
    stream = [
        *synth.Agrawal(classification_function=before, seed=seed).take(CHANGE_AT),
        *synth.Agrawal(classification_function=after, seed=seed + 100).take(n_after),
    ]
    detector = LossADWIN()
    decisions: list[tuple[int, Decision]] = []
    first_alarm = None
    for i, (x, y) in enumerate(stream):
        p = champion.predict_proba_one(x).get(True, 0.0)
        detector.update(float((p >= 0.5) != bool(y)))
        drift = detector.drift_detected if force_alarm_at is None else i == force_alarm_at
        if drift and first_alarm is None:
            first_alarm = i
        decision = response.observe(x, y, p, drift=drift)
        champion.learn_one(x, y)
        if decision.action != "none":
            decisions.append((i, decision))
        if decision.should_promote:
            assert response.promote() is not champion
            break
    return decisions, first_alarm


@pytest.mark.parametrize(("before", "after", "seed"), [(0, 4, 1), (2, 5, 2), (0, 2, 3)])
def test_challenger_wins_after_a_concept_change(before, after, seed):
    decisions, first_alarm = run_challenger(before, after, seed)
    assert first_alarm is not None and CHANGE_AT <= first_alarm < CHANGE_AT + 500, first_alarm
    actions = [d.action for _, d in decisions]
    assert actions == ["challenger_started", "promote"], decisions
    at, promote = decisions[-1]
    assert promote.should_promote and promote.n_compared >= 500
    assert promote.challenger_score is not None and promote.champion_score is not None
    assert promote.challenger_score >= promote.champion_score + MARGIN
    assert at < CHANGE_AT + 3000


@pytest.mark.parametrize(("function", "seed"), [(2, 1), (3, 3)])
def test_no_promotion_on_a_stationary_stream(function, seed):
    # a (false) alarm starts a challenger, but the fresh clone never beats the champion by the margin
    decisions, _ = run_challenger(function, function, seed, force_alarm_at=CHANGE_AT)
    actions = [d.action for _, d in decisions]
    assert "promote" not in actions
    assert actions == ["challenger_started", "challenger_dropped"], decisions


def test_stationary_stream_raises_no_loss_alarm_so_no_challenger():
    decisions, first_alarm = run_challenger(0, 0, 4)
    assert first_alarm is None
    assert decisions == []


def test_a_new_alarm_during_the_trial_does_not_restart_it():
    response = ChallengerResponse(linear_model.LogisticRegression(), min_examples=10, max_examples=100)
    x, y = {"a": 1.0}, True
    assert response.observe(x, y, 0.9, drift=True).action == "challenger_started"
    challenger = response.challenger
    decision = response.observe(x, y, 0.9, drift=True)
    assert decision.action == "none" and decision.n_compared == 2
    assert response.challenger is challenger


def test_challenger_settings_are_checked():
    with pytest.raises(ConfigError, match="min_examples"):
        ChallengerResponse(linear_model.LogisticRegression(), min_examples=10, max_examples=5)
    with pytest.raises(ConfigError, match="no challenger"):
        ChallengerResponse(linear_model.LogisticRegression()).promote()


def test_alert_only_records():
    response = AlertResponse()
    decisions = [response.observe({"a": float(i)}, i % 2, 0.5, drift=i in (3, 7)) for i in range(10)]
    assert [d.action for d in decisions].count("alert") == 2
    assert response.n_alarms == 2 and response.n_observed == 10
    assert all(d.rollback_to is None and not d.should_promote for d in decisions)


def make_registry(tmp_path: Path, history: list[tuple[str, float]]) -> Registry:
    reg = Registry(tmp_path / "registry")
    for version, auc in history:
        reg.register(linear_model.LogisticRegression(), "fraud", version, {"metrics": {"auc": auc}})
        reg.promote("fraud", version, reason="test")
    return reg


def test_rollback_chooses_the_last_version_with_good_metrics(tmp_path):
    reg = make_registry(tmp_path, [("1.0.0", 0.91), ("1.1.0", 0.88), ("1.2.0", 0.62), ("1.3.0", 0.85)])
    response = RollbackResponse(reg, "fraud", thresholds={"auc": 0.8})
    assert response.observe({}, True, 0.2, drift=False) == Decision()
    decision = response.observe({}, True, 0.2, drift=True)
    assert decision.action == "rollback"
    assert decision.rollback_to == "1.1.0"  # 1.2.0 (auc 0.62) is skipped
    moved = response.apply(decision)
    assert moved.version == "1.1.0"
    assert reg.aliases("fraud")["production"] == "1.1.0"
    assert reg.history("fraud")[-1].action == "set"
    assert "drift response" in reg.history("fraud")[-1].reason


def test_rollback_to_the_previous_version_is_a_registry_rollback(tmp_path):
    reg = make_registry(tmp_path, [("1.0.0", 0.91), ("1.1.0", 0.88), ("1.2.0", 0.5)])
    response = RollbackResponse(reg, "fraud", thresholds={"auc": 0.8})
    # 1.2.0 misbehaves; roll back to 1.1.0, then a second drift walks back to 1.0.0
    decision = response.observe({}, True, 0.2, drift=True)
    assert decision.rollback_to == "1.1.0"
    response.apply(decision)
    assert reg.history("fraud")[-1].action == "rollback"
    second = response.observe({}, True, 0.2, drift=True)
    assert second.rollback_to == "1.0.0"
    response.apply(second)
    assert reg.aliases("fraud")["production"] == "1.0.0"


def test_rollback_without_a_good_version_only_alerts(tmp_path):
    reg = make_registry(tmp_path, [("1.0.0", 0.7), ("1.1.0", 0.9)])
    decision = RollbackResponse(reg, "fraud", thresholds={"auc": 0.8}).observe({}, True, 0.2, drift=True)
    assert decision.action == "alert" and decision.rollback_to is None
    assert "1.0.0: auc 0.7 is below the minimum 0.8" in decision.reason
    with pytest.raises(RegistryError, match="names no version"):
        RollbackResponse(reg, "fraud", thresholds={"auc": 0.8}).apply(decision)


def test_make_response_builds_each_kind(tmp_path):
    reg = make_registry(tmp_path, [("1.0.0", 0.9)])
    assert isinstance(make_response("alert"), AlertResponse)
    assert isinstance(
        make_response("challenger", champion=linear_model.LogisticRegression()), ChallengerResponse
    )
    rollback = make_response("rollback", registry=reg, name="fraud", thresholds={"auc": 0.8})
    assert isinstance(rollback, RollbackResponse)
    with pytest.raises(ConfigError, match="champion"):
        make_response("challenger")
    with pytest.raises(ConfigError, match="thresholds are empty"):
        make_response("rollback", registry=reg, name="fraud")
