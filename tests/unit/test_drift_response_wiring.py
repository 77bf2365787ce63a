"""The drift response acting on the worker's components, over the in-memory stores of ``hanzo-ml train``.

The concept-change scenario is :mod:`tests.drift_support`'s, shared with the integration test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from river import linear_model
from river import metrics as river_metrics

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.monitor import Metrics
from hanzo.ml.monitor.response import ChallengerResponse, RollbackResponse
from hanzo.ml.registry import Registry
from hanzo.ml.streams.drift_responder import DriftResponder, build_responder
from hanzo.ml.streams.learner_service import LearnerSlot
from hanzo.ml.streams.order_processor import Scorer
from tests.drift_support import CHALLENGER, CHANGE_AT, run_replay, spec_with


def test_challenger_from_the_drift_point_replaces_the_champion(tmp_path: Path) -> None:
    spec = spec_with("challenger", **CHALLENGER)
    registry, metrics = Registry(tmp_path), Metrics(CollectorRegistry())
    processor, slot, responder, feeder = run_replay(spec, registry, metrics)
    champion = feeder.responder.response.champion  # type: ignore[attr-defined]
    actions = [a for _, a in feeder.decisions]
    assert "challenger_started" in actions and "promote" in actions, feeder.decisions
    promoted_at = next(n for n, a in feeder.decisions if a == "promote")
    assert promoted_at > CHANGE_AT  # the challenger answered the injected concept change
    # the live learner switched everywhere: the slot, the scorer, the response's champion
    live = slot.learner
    assert processor.scorers[0].learner is live
    assert champion is live.model
    # the registry serves it, promoted with a reason naming the drift
    assert registry.aliases(spec.name)["production"] == live.version
    event = registry.history(spec.name)[-1]
    assert (event.action, event.to_version) == ("promote", live.version)
    assert "drift" in event.reason and "challenger" in event.reason
    meta = registry.show(spec.name, live.version).metadata
    assert meta["drift_response"]["challenger_score"] < meta["drift_response"]["champion_score"]
    assert meta["metrics"]["cumulative"]  # the challenger's own metrics over its trial
    # the stream position carried over: every label learned exactly once by the slot
    learned = sum(out.learned.get(spec.name, 0) for out in feeder.outcomes)
    assert live.examples_learned == learned
    get = metrics.registry.get_sample_value
    labels = {"model": spec.name, "action": "promote"}
    assert get("hanzo_drift_responses_total", labels) == actions.count("promote")
    assert get("hanzo_promotions_total", {"model": spec.name}) == actions.count("promote")
    assert get("hanzo_snapshots_total", {"model": spec.name}) == actions.count("promote")


def test_the_new_live_model_learns_the_rest_of_the_batch() -> None:
    old = OnlineLearner("m", linear_model.LogisticRegression(), MetricSet(["logloss"]))
    slot = LearnerSlot("m", "m", old, "1.0.0", ("a",))
    scorer = Scorer("m", ("a",), old)
    response = ChallengerResponse(old.model, river_metrics.LogLoss, window=2, min_examples=2, margin=0.0)
    responder = DriftResponder(response, slot, [scorer], registry=None)
    xs = [{"a": float(i % 2)} for i in range(6)]
    examples = [(0.99, float(i % 2 == 0), 5.0) for i in range(6)]  # a champion confidently wrong
    decisions = responder.observe_batch(xs, examples, [True, False, False, False, False, False])
    assert [d.action for d in decisions] == ["challenger_started", "promote"]
    live = slot.learner
    assert live is not old and scorer.learner is live and response.champion is live.model
    # the challenger's metrics cover its trial (2 examples) and the rest of the batch (4), learned after
    assert live.metrics.n == 6
    assert live.examples_learned == old.examples_learned


def test_rollback_loads_the_last_good_version_and_keeps_the_stream_position(tmp_path: Path) -> None:
    registry, metrics = Registry(tmp_path), Metrics(CollectorRegistry())
    good = OnlineLearner("fraud", linear_model.LogisticRegression())
    for i in range(50):
        good.learn_label(f"g{i}", {"a": float(i % 2)}, float(i % 2), 1_700_000_000_000)
    registry.register(good, "fraud", "1.0.0", {"metrics": {"cumulative": {"auc": 0.9}, "auc": 0.9}})
    registry.promote("fraud", "1.0.0")
    bad = good.with_model(linear_model.LogisticRegression(), version="1.1.0")
    registry.register(bad, "fraud", "1.1.0", {"metrics": {"auc": 0.55}})
    registry.promote("fraud", "1.1.0")
    bad.offsets["labels/0"] = 777
    slot = LearnerSlot("fraud", "fraud", bad, "1.0.0", ("a",))
    scorer = Scorer("fraud", ("a",), bad)
    responder = DriftResponder(
        RollbackResponse(registry, "fraud", {"auc": 0.8}), slot, [scorer], registry, metrics
    )
    decisions = responder.observe_batch(
        [{"a": 1.0}, {"a": 0.0}], [(0.5, 1.0, 0.7), (0.5, 0.0, 0.7)], [True, False]
    )
    assert decisions[0].action == "rollback" and decisions[0].rollback_to == "1.0.0"
    assert registry.aliases("fraud")["production"] == "1.0.0"
    assert registry.history("fraud")[-1].action == "rollback"
    live = slot.learner
    assert scorer.learner is live and live.version == "1.0.0"
    assert live.offsets["labels/0"] == 777 and live.seen("g3")  # stream position kept, not the old one's
    assert live.score({"a": 1.0}) != pytest.approx(bad.score({"a": 1.0}))
    assert metrics.registry.get_sample_value("hanzo_rollbacks_total", {"model": "fraud"}) == 1


def test_alert_counts_and_changes_nothing(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    slot = LearnerSlot("fraud", "fraud", learner, "1.0.0", ("a",))
    responder = build_responder(spec_with("alert"), slot, [], Registry(tmp_path), metrics)
    decisions = responder.observe_batch([{"a": 1.0}] * 3, [(0.5, 1.0, 0.7)] * 3, [True, False, True])
    assert [d.action for d in decisions] == ["alert", "none", "alert"]
    assert slot.learner is learner
    labels = {"model": "fraud_detection", "action": "alert"}
    assert metrics.registry.get_sample_value("hanzo_drift_responses_total", labels) is None
    labels["model"] = "fraud"
    assert metrics.registry.get_sample_value("hanzo_drift_responses_total", labels) == 2


def test_a_response_without_detectors_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="drift_detectors"):
        spec_with("challenger", drift_detectors=False)
    with pytest.raises(ConfigError, match="challenger_max_examples"):
        spec_with("challenger", challenger_window=500, challenger_max_examples=100)
