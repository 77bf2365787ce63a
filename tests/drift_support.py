"""The concept-change scenario shared by the drift-response tests.

:func:`scenario_config`, :data:`CHALLENGER` and :func:`run_replay` drive the unit tests of the wiring and
are the reference of ``tests/integration/test_drift_response.py``: a real worker that learns the same
labels in the same order must decide exactly what this replay decides.
"""

from __future__ import annotations

from typing import Any

from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.monitor import Metrics, Monitor
from hanzo.ml.registry import Registry
from hanzo.ml.streams.drift_responder import DriftResponder, build_responder
from hanzo.ml.streams.learner_service import LabelBatchOutcome
from hanzo.ml.streams.simulation import DriftSpec, Simulator, SimulatorConfig
from hanzo.ml.streams.train import HISTORY_TOPICS, _Feeder, offline_components

CHANGE_AT = 3000
ORDERS = 5000
#: the challenger settings of the scenario: a short comparison window, dropped if it has not won in 1500
CHALLENGER: dict[str, Any] = {"challenger_window": 300, "challenger_max_examples": 1500}


def scenario_config(orders: int = ORDERS) -> SimulatorConfig:
    """Fraud at 25 %, labels within about an hour, fraudsters switching to gift cards at ``CHANGE_AT``."""
    return SimulatorConfig(
        seed=1,
        orders=orders,
        fraud_rate=0.25,
        customers=500,
        browse_events_per_order=0,
        chargeback_delay_days=(0.01, 0.05),
        settle_delay_days=(0.01, 0.05),
        drift=(DriftSpec(at_order=CHANGE_AT, kind="concept_change"),),
    )


def spec_with(response: str, model: str = "hoeffding_tree", **monitoring: Any) -> PipelineSpec:
    data = PipelineSpec.shipped("fraud_detection").model_dump()
    data["model"].update(type=model, hyperparameters={})
    data["monitoring"].update(drift_response=response, **monitoring)
    return PipelineSpec.from_dict(data)


class _RespondingFeeder(_Feeder):
    """The replay of ``hanzo-ml train``, with the worker's label path: monitor alarms -> drift response."""

    def __init__(self, *args: Any, monitor: Monitor, responder: DriftResponder) -> None:
        super().__init__(*args)
        self.monitor = monitor
        self.responder = responder
        self.outcomes: list[LabelBatchOutcome] = []
        self.decisions: list[tuple[int, str]] = []

    def labels(self, batch: list, now_ms: int, count: bool = False) -> None:
        out = self.joiner.process(batch, now=now_ms / 1000)
        self.outcomes.append(out)
        for name, examples in out.examples.items():
            alarms = [self.monitor.observe_label(p, y, loss) for p, y, loss in examples]
            for d in self.responder.observe_batch(out.inputs[name], examples, alarms):
                if d.action != "none":
                    self.decisions.append((self.responder.live.examples_learned, d.action))


def run_replay(
    spec: PipelineSpec,
    registry: Registry,
    metrics: Metrics,
    orders: int = ORDERS,
    until_promoted: bool = False,
):
    """Replay :func:`scenario_config` in chunks of 200 events through the worker's label path.

    ``until_promoted`` stops after the chunk in which the first challenger was promoted.
    """
    processor, joiner = offline_components([spec])
    slot = joiner.slots[0]
    responder = build_responder(spec, slot, processor.scorers, registry, metrics)
    feeder = _RespondingFeeder(
        processor, joiner, dict(HISTORY_TOPICS), None, monitor=Monitor(spec.name), responder=responder
    )
    chunk: list = []
    for event in Simulator(scenario_config(orders)).events():
        chunk.append(event)
        if len(chunk) >= 200:
            feeder.chunk(chunk)
            chunk = []
            if until_promoted and any(a == "promote" for _, a in feeder.decisions):
                return processor, slot, responder, feeder
    feeder.chunk(chunk)
    return processor, slot, responder, feeder
