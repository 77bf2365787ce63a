"""The label join learns every label exactly once, and ends where a plain River loop over them ends.

The reference is the loop River's ``progressive_val_score`` runs, written out: for each distinct label with
a finite vector, in the order the join meets them, ``predict_proba_one``, the metrics, the loss detector,
then ``learn_one``. The join gets the same labels as Kafka records, in batches of several sizes, with a
label delivered twice, labels of another target, a record that is not a label, a vector that is not
finite and labels that wait for their vector. Its model weights, scaler statistics, metrics (``==``),
loss-detector alarms, counts and per-example outputs must be the reference's; a label skipped or learned
twice changes them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from river import drift

from hanzo.ml.learners.binary_metrics import log_loss
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.learners.vectors import InMemoryVectorStore, VectorWrite
from hanzo.ml.schemas.events import Label, to_json
from hanzo.ml.streams.learner_service import LabelJoiner, LearnerSlot
from hanzo.ml.streams.runtime import new_learner
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from hanzo.ml.streams.train import offline_components, replay

SPEC = PipelineSpec.shipped("fraud_detection")


def _examples() -> list[tuple[Label, dict[str, Any]]]:
    """The fraud labels of a simulated history, each with the vector scoring stored for it."""
    config = SimulatorConfig(
        seed=4,
        orders=2_500,
        customers=250,
        orders_per_day=800,
        fraud_rate=0.08,
        chargeback_delay_days=(0.5, 3.0),
        settle_delay_days=(0.5, 2.0),
    )
    events = sorted(Simulator(config).events(), key=lambda e: e.event_time)
    processor, joiner = offline_components([SPEC])
    replay(events, processor, joiner)
    labels = [e for e in events if isinstance(e, Label) and e.target == SPEC.data.label]
    stored = processor.vectors.read(SPEC.name, [lab.subject_id for lab in labels])
    return [(lab, dict(found["x"])) for lab, found in zip(labels, stored, strict=True) if found is not None]


EXAMPLES = _examples()


def _record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("labels", 0, offset, 0, 0, None, value, None, 0, len(value), [])


def _stream() -> tuple[list[bytes], dict[str, dict[str, Any]], list[tuple[dict[str, Any], bool]]]:
    """Records' values, the vectors to store, and the examples a plain loop learns (in the join's order)."""
    values: list[bytes] = []
    vectors: dict[str, dict[str, Any]] = {}
    learned: list[tuple[dict[str, Any], bool]] = []
    for i, (lab, x) in enumerate(EXAMPLES):
        if i == 40:  # a vector that is not finite: never learned
            x = {**x, "order_total": math.nan}
        vectors[lab.subject_id] = x
        values.append(to_json(lab))
        if i != 40:
            learned.append((x, bool(lab.value)))
        if i % 97 == 5:  # delivered again a little later: learned once
            values.append(to_json(lab))
        if i % 211 == 0:  # another target and a record that is not a label: learned never
            other = lab.model_copy(update={"target": "churned_90d", "label_id": f"{lab.label_id}-c"})
            values += [to_json(other), b'{"kind": "label", "label_id": "x"}']
    return values, vectors, learned


def _reference(learned: list[tuple[dict[str, Any], bool]]) -> tuple[Any, MetricSet, list[float], int]:
    model = build_model(SPEC)
    ms = MetricSet(SPEC.evaluation.metrics, rolling_window=SPEC.evaluation.rolling_window)
    detector = drift.ADWIN()
    preds, alarms = [], 0
    for x, y in learned:
        p = model.predict_proba_one(x).get(True, 0.0)
        ms.update(y, p)
        detector.update(log_loss(y, p))
        alarms += detector.drift_detected
        model.learn_one(x, y)
        preds.append(p)
    return model, ms, preds, alarms


def _state(model: Any) -> tuple[Any, ...]:
    """What a River pipeline learned: the regression's weights and intercept, the scalers' statistics."""
    steps = list(model.steps.values())
    lr = steps[-1]
    scalers = [
        (dict(t.means), dict(t.vars), dict(t.counts))
        for part in steps[0].transformers.values()
        for t in getattr(part, "steps", {}).values()
        if hasattr(t, "means")
    ]
    return (lr._weights.to_dict(), lr.intercept, scalers)


def _key(x: dict[str, Any], y: bool) -> tuple[Any, ...]:
    return (tuple(sorted(x.items(), key=str)), y)


@pytest.mark.parametrize("batch", [1, 7, 500, 2_000])
def test_the_join_learns_each_label_once_and_equals_a_plain_river_loop(batch: int) -> None:
    values, vectors, learned = _stream()
    store = InMemoryVectorStore()
    # a few vectors are stored only after their labels arrived: those labels wait, then are learned
    late = {lab.subject_id for lab, _ in EXAMPLES[100:103]}
    store.write(
        [], [VectorWrite(SPEC.name, s, x, 0.0, 0, 86_400) for s, x in vectors.items() if s not in late]
    )
    learner = new_learner(SPEC)
    slot = LearnerSlot(SPEC.name, SPEC.data.label, learner, SPEC.version, tuple(SPEC.data.features))
    joiner = LabelJoiner([slot], None, vectors=store)
    records = [_record(i, v) for i, v in enumerate(values)]
    order: list[tuple[dict[str, Any], bool]] = []  # what the join learned, in its order
    preds: list[float] = []
    n_learned = drifts = dead = 0
    for start in range(0, len(records), batch):
        if late and start >= len(records) // 2:
            store.write([], [VectorWrite(SPEC.name, s, vectors[s], 0.0, 0, 86_400) for s in late])
            late = set()
        out = joiner.process(records[start : start + batch], now=0.0)
        examples = out.examples.get(SPEC.name, [])
        inputs = out.inputs.get(SPEC.name, [])
        assert (
            len(examples)
            == len(inputs)
            == out.learned.get(SPEC.name, 0)
            == len(out.losses.get(SPEC.name, []))
        )
        order += [(x, bool(v)) for x, (_, v, _) in zip(inputs, examples, strict=True)]
        preds += [p for p, _, _ in examples]
        n_learned += out.learned.get(SPEC.name, 0)
        drifts += out.drifts.get(SPEC.name, 0)
        dead += len(out.dead_letters)
    assert not learner.pending
    assert learner.rejected_non_finite == 1
    assert dead == sum(1 for i in range(len(EXAMPLES)) if i % 211 == 0)
    # every example learned, each exactly once
    assert Counter(_key(x, y) for x, y in order) == Counter(_key(x, y) for x, y in learned)
    assert n_learned == learner.examples_learned == len(learned)
    # and the model, metrics and alarms of a plain River loop over them in that order
    model, ms, ref_preds, alarms = _reference(order)
    assert preds == ref_preds
    assert _state(learner.model) == _state(model)
    assert learner.metric_values() == ms.get()
    assert drifts == learner.drift_alarms == alarms


@pytest.mark.parametrize("model_type", ["logistic_regression", "hoeffding_tree"])
def test_learn_labels_ends_where_learn_label_one_at_a_time_ends(model_type: str) -> None:
    """The batch path against the per-label one; a tree has no prediction before its first example."""
    data = SPEC.model_dump()
    data["model"] = {"type": model_type}
    spec = PipelineSpec.from_dict(data)
    one, many = new_learner(spec), new_learner(spec)
    rows = [(lab.label_id, x, lab.value, lab.event_time) for lab, x in EXAMPLES]
    rows[10] = (rows[10][0], {**rows[10][1], "spend_24h": math.inf}, rows[10][2], rows[10][3])
    rows.insert(20, rows[5])  # a duplicate
    outcomes = [one.learn_label(*row) for row in rows]
    done = many.learn_labels(*(list(col) for col in zip(*rows, strict=True)))
    assert done.index == [i for i, o in enumerate(outcomes) if o is not None]
    kept = [o for o in outcomes if o is not None]
    assert done.y_pred == [o.y_pred for o in kept]
    assert done.loss == [o.loss for o in kept]
    assert done.drift == [o.drift for o in kept]
    assert many.metric_values() == one.metric_values()
    assert (many.examples_learned, many.rejected_non_finite, many.drift_alarms, many._seen) == (
        one.examples_learned,
        one.rejected_non_finite,
        one.drift_alarms,
        one._seen,
    )
    assert many.score_many([x for _, x in EXAMPLES[:50]]) == one.score_many([x for _, x in EXAMPLES[:50]])
