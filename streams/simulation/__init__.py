"""The commerce simulator: a seeded stream of orders, customer events and delayed labels with ground truth.

:class:`Simulator` generates the stream from a :class:`SimulatorConfig`; :func:`write_jsonl` /
:func:`read_jsonl` keep it in a history file and :func:`produce` sends it to Kafka. :class:`BGNBD` turns
churn on (the BG/NBD customer-base model).
"""

from hanzo.ml.schemas.jsonl import read_jsonl, write_jsonl
from hanzo.ml.streams.simulation.config import BGNBD, DriftSpec, SimulatorConfig
from hanzo.ml.streams.simulation.generator import SimulationCounters, Simulator
from hanzo.ml.streams.simulation.producer import ProduceStats, event_key, produce

__all__ = [
    "BGNBD",
    "DriftSpec",
    "ProduceStats",
    "SimulationCounters",
    "Simulator",
    "SimulatorConfig",
    "event_key",
    "produce",
    "read_jsonl",
    "write_jsonl",
]
