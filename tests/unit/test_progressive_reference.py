"""Reference check: the learner's progressive metrics equal River's ``progressive_val_score``.

The examples are the ones ``hanzo-ml train`` joins (the stored vector and the label, in learning order);
River evaluates a fresh copy of the same model on them. Class metrics (precision, recall) are not compared:
ours threshold the probability at 0.5 (``>= 0.5`` is positive, see learners.metrics), River's take
``predict_one`` (the arg max, which breaks a 0.5 tie towards the first class).
"""

from __future__ import annotations

import pytest
from river import evaluate, metrics

from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.streams.runtime import new_learner
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from hanzo.ml.streams.train import offline_components, replay


class Recording(OnlineLearner):
    """An OnlineLearner that keeps each example it learns, in order."""

    examples: list

    def learn_label(self, label_id, x, y, event_time_ms):
        outcome = super().learn_label(label_id, x, y, event_time_ms)
        if outcome is not None:
            self.examples.append((dict(x), bool(y)))
        return outcome


@pytest.mark.parametrize(
    "model",
    [
        "logistic_regression",
        "hoeffding_tree",
    ],
)
def test_progressive_metrics_equal_river_progressive_val_score(model):
    data = PipelineSpec.shipped("fraud_detection").model_dump()
    data["model"] = {"type": model}
    data["training"] = {"validation": "progressive"}
    spec = PipelineSpec.from_dict(data)
    base = new_learner(spec)
    learner = Recording(spec.name, base.model, base.metrics, task="classification")
    learner.examples = []
    events = sorted(
        Simulator(
            SimulatorConfig(
                seed=8,
                orders=1500,
                customers=200,
                orders_per_day=500,
                fraud_rate=0.06,
                chargeback_delay_days=(0.5, 3.0),
                settle_delay_days=(0.5, 2.0),
            )
        ).events(),
        key=lambda e: e.event_time,
    )
    processor, joiner = offline_components([spec], {spec.name: learner})
    replay(events, processor, joiner, batch_size=400)
    assert len(learner.examples) > 1000

    ours = learner.metric_values()["cumulative"]
    for name, metric in [("auc", metrics.ROCAUC(n_thresholds=20)), ("logloss", metrics.LogLoss())]:
        reference = evaluate.progressive_val_score(learner.examples, build_model(spec), metric)
        assert ours[name] == pytest.approx(reference.get(), rel=1e-12, abs=1e-12), name
