"""Learner throughput: the label join + predict-then-learn against plain River, and train-from-history.

Run alone with ``.venv/bin/python -m bench.learners``; writes section ``learners`` of ``bench/results.json``.

- ``examples_per_s``: the labels of 8,000 simulated orders through
  :class:`~streams.learner_service.LabelJoiner` (parse the label record, read the stored vector from the
  in-memory vector store, predict, update the metrics and ADWIN, learn,
  dedupe bookkeeping) on the fraud pipeline's model, batches of 2,000.
- ``plain_river_examples_per_s``: the same examples, same model built fresh, ``predict_proba_one`` then
  ``learn_one`` in a plain loop, in the same run; ``ratio_vs_plain_river`` = the first over the second.
- ``mini_batch_size`` (N), ``mini_batch_examples_per_s``, ``mini_batch_speedup``: the same joiner on the same
  examples with ``training.mini_batch: {size: N}`` (:mod:`learners.mini_batch`: each chunk of up to N
  joined labels predicted with ``predict_proba_many`` by the model before it, then learned with River's
  ``learn_many``), in the same run; the speedup is over ``examples_per_s``.
- ``per_event_progressive_auc`` / ``mini_batch_progressive_auc`` and ``per_event_progressive_logloss`` /
  ``mini_batch_progressive_logloss``: the learner's cumulative progressive (predict-then-learn) metrics
  after those runs, so what mini-batches cost in model quality sits beside what they save.
- ``mini_batch_sweep``: ``{N: {"examples_per_s", "progressive_auc", "progressive_logloss"}}`` for a few
  other chunk sizes, one run each.
- ``train_history_events_per_s``: ``learners.train.train`` on a simulated history (orders, customer events
  and labels, all counted), the fraud pipeline, in-memory stores.

Medians over repeats; figures, not pass/fail.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.table import Table

from bench.results import machine, write_section
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.mini_batch import mini_batch_size
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import InMemoryVectorStore, VectorWrite
from hanzo.ml.schemas.events import Label, to_json
from hanzo.ml.streams.learner_service import LabelJoiner, LearnerSlot
from hanzo.ml.streams.runtime import new_learner
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from hanzo.ml.streams.train import offline_components, replay, train

REPEATS = 3
BATCH = 2000
MINI_BATCH = 500
SWEEP = (50, 250, 1000, 2000)


def history(orders: int, seed: int = 1) -> list[Any]:
    """A simulated history sorted by event time."""
    config = SimulatorConfig(
        seed=seed,
        orders=orders,
        customers=max(100, orders // 10),
        orders_per_day=2000,
        chargeback_delay_days=(0.5, 3.0),
        settle_delay_days=(0.5, 2.0),
        fraud_rate=0.05,
    )
    return sorted(Simulator(config).events(), key=lambda e: e.event_time)


def joined_examples(spec: PipelineSpec, events: list[Any]) -> list[tuple[Label, dict[str, Any]]]:
    """Each label of ``events`` with the vector the worker path stored for it."""
    processor, joiner = offline_components([spec])
    replay(events, processor, joiner)
    labels = [e for e in events if isinstance(e, Label) and e.target == spec.data.label]
    stored = processor.vectors.read(spec.name, [lab.subject_id for lab in labels])
    return [(lab, found["x"]) for lab, found in zip(labels, stored, strict=True) if found is not None]


def bench_joiner(spec: PipelineSpec, examples: list[tuple[Label, dict[str, Any]]]) -> float:
    """Examples/s through a fresh LabelJoiner over an in-memory vector store."""
    return run_joiner(spec, examples)[0]


def with_mini_batch(spec: PipelineSpec, size: int) -> PipelineSpec:
    """``spec`` with ``training.mini_batch: {size: size}``."""
    training = {**spec.training.model_dump(), "mini_batch": {"size": size}}
    return PipelineSpec.from_dict({**spec.model_dump(), "training": training})


def run_joiner(
    spec: PipelineSpec, examples: list[tuple[Label, dict[str, Any]]]
) -> tuple[float, dict[str, float]]:
    """Examples/s through a fresh LabelJoiner, and the learner's cumulative progressive metrics after it."""
    vectors = InMemoryVectorStore()
    vectors.write(
        [],
        [VectorWrite(spec.name, lab.subject_id, x, 0.0, lab.event_time, 86_400) for lab, x in examples],
    )
    records = []
    for i, (lab, _) in enumerate(examples):
        value = to_json(lab)
        key = lab.subject_id.encode()
        records.append(ConsumerRecord("labels", 0, i, lab.event_time, 0, key, value, None, 0, len(value), []))
    learner = new_learner(spec)
    features = tuple(spec.data.features)
    slot = LearnerSlot(
        spec.name, spec.data.label, learner, spec.version, features, mini_batch=mini_batch_size(spec)
    )
    joiner = LabelJoiner([slot], None, vectors=vectors)
    t0 = time.perf_counter()
    for i in range(0, len(records), BATCH):
        joiner.process(records[i : i + BATCH], now=0.0)
    elapsed = time.perf_counter() - t0
    assert learner.examples_learned == len(examples), (learner.examples_learned, len(examples))
    return len(examples) / elapsed, learner.metric_values()["cumulative"]


def bench_plain_river(spec: PipelineSpec, examples: list[tuple[Label, dict[str, Any]]]) -> float:
    """Examples/s of predict_proba_one + learn_one on the same examples and a fresh model."""
    model = build_model(spec)
    data = [(x, bool(lab.value)) for lab, x in examples]
    t0 = time.perf_counter()
    for x, y in data:
        model.predict_proba_one(x)
        model.learn_one(x, y)
    return len(data) / (time.perf_counter() - t0)


def main() -> None:
    """Run the benchmark, print a table and write the results section."""
    console = Console()
    spec = PipelineSpec.shipped("fraud_detection")
    console.print("simulating history ...")
    events = history(8_000)
    examples = joined_examples(spec, events)
    batched = with_mini_batch(spec, MINI_BATCH)
    joiner_rates, plain_rates, batch_rates = [], [], []
    for _ in range(REPEATS):  # interleaved, so a load change on the machine hits all three alike
        rate, per_event = run_joiner(spec, examples)
        joiner_rates.append(rate)
        plain_rates.append(bench_plain_river(spec, examples))
        rate, mini = run_joiner(batched, examples)
        batch_rates.append(rate)
    sweep = {}
    for size in SWEEP:
        rate, values = run_joiner(with_mini_batch(spec, size), examples)
        sweep[str(size)] = {
            "examples_per_s": round(rate, 1),
            "progressive_auc": round(values["auc"], 4),
            "progressive_logloss": round(values["logloss"], 4),
        }
    train_events = history(4_000, seed=2)
    train_rates = []
    for _ in range(2):
        t0 = time.perf_counter()
        train(spec, train_events)
        train_rates.append(len(train_events) / (time.perf_counter() - t0))
    examples_per_s = statistics.median(joiner_rates)
    plain = statistics.median(plain_rates)
    mini_rate = statistics.median(batch_rates)
    section = {
        "examples_per_s": round(examples_per_s, 1),
        "plain_river_examples_per_s": round(plain, 1),
        "ratio_vs_plain_river": round(examples_per_s / plain, 3),
        "train_history_events_per_s": round(statistics.median(train_rates), 1),
        "mini_batch_size": MINI_BATCH,
        "mini_batch_examples_per_s": round(mini_rate, 1),
        "mini_batch_speedup": round(mini_rate / examples_per_s, 3),
        "per_event_progressive_auc": round(per_event["auc"], 4),
        "mini_batch_progressive_auc": round(mini["auc"], 4),
        "per_event_progressive_logloss": round(per_event["logloss"], 4),
        "mini_batch_progressive_logloss": round(mini["logloss"], 4),
        "mini_batch_sweep": sweep,
        "examples": len(examples),
        "train_history_events": len(train_events),
        "pipeline": spec.name,
        "model": spec.model.type,
        "machine": machine(),
    }
    write_section("learners", section)
    table = Table(title=f"learners ({spec.name}: {spec.model.type}, {len(examples):,} examples)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("label join + predict-then-learn (examples/s)", f"{examples_per_s:,.0f}")
    table.add_row("plain River predict + learn (examples/s)", f"{plain:,.0f}")
    table.add_row("ratio vs plain River", f"{examples_per_s / plain:.2f}")
    table.add_row(f"mini-batch {MINI_BATCH} (learn_many) join + learn (examples/s)", f"{mini_rate:,.0f}")
    table.add_row(
        "progressive AUC / log loss, per event",
        f"{per_event['auc']:.4f} / {per_event['logloss']:.4f}",
    )
    table.add_row(
        f"progressive AUC / log loss, mini-batch {MINI_BATCH}", f"{mini['auc']:.4f} / {mini['logloss']:.4f}"
    )
    for size, row in sweep.items():
        table.add_row(
            f"  mini-batch {size}: examples/s, AUC / log loss",
            f"{row['examples_per_s']:,.0f}, {row['progressive_auc']:.4f} / {row['progressive_logloss']:.4f}",
        )
    table.add_row(
        f"train from history ({len(train_events):,} events, events/s)",
        f"{section['train_history_events_per_s']:,.0f}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
