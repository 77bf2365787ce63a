"""LabelJoiner: labels that arrive before their vector wait, and are looked up again only when useful."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord
from river import linear_model

from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.vectors import InMemoryVectorStore, VectorWrite
from hanzo.ml.schemas.events import Label, to_json
from hanzo.ml.streams.learner_service import LabelJoiner, LearnerSlot

T0 = 1_700_000_000_000


class CountingVectors(InMemoryVectorStore):
    """The in-memory vector store, recording the subjects each read asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    def read(self, model: str, subjects: Sequence[str]) -> list[dict[str, Any] | None]:
        self.reads.append(list(subjects))
        return super().read(model, subjects)


def records(labels: list[Label], start: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("labels", 0, start + i, 0, 0, None, to_json(lab), None, 0, 0, [])
        for i, lab in enumerate(labels)
    ]


def label(i: int) -> Label:
    return Label(label_id=f"l{i}", target="fraud", subject_id=f"o{i}", value=float(i % 2),
                 event_time=T0 + 1000 * i)


def score(vectors: InMemoryVectorStore, ids: range) -> None:
    vectors.write([], [VectorWrite("fraud", f"o{i}", {"x": float(i)}, 0.5, T0 + 1000 * i, 3600) for i in ids])


def test_waiting_labels_are_read_again_when_scoring_reaches_them_or_after_retry_every_s() -> None:
    vectors = CountingVectors()
    slot = LearnerSlot("fraud", "fraud", OnlineLearner("fraud", linear_model.LogisticRegression()), "1.0.0",
                       ("x",))
    watermark = 0
    joiner = LabelJoiner([slot], None, vectors=vectors, watermark=lambda: watermark, retry_every_s=10.0)
    # 100 labels arrive before any order was scored: all wait
    out = joiner.process(records([label(i) for i in range(100)], 0), now=0.0)
    assert out.learned == {} and len(slot.learner.pending) == 100
    # orders 0-29 are scored; the next batch of labels reads only its own and those scoring reached
    score(vectors, range(30))
    watermark = T0 + 29_000
    out = joiner.process(records([label(i) for i in range(100, 110)], 100), now=1.0)
    assert vectors.reads[-1] == [f"o{i}" for i in range(30)] + [f"o{i}" for i in range(100, 110)]
    assert out.learned == {"fraud": 30} and len(slot.learner.pending) == 80
    # scoring stalls (an idle partition holds the watermark) while orders 30-109 are stored by now:
    score(vectors, range(30, 110))
    reads = len(vectors.reads)
    joiner.process(records([], 110), now=2.0)
    assert len(vectors.reads) == reads  # nothing was read again
    out = joiner.process(records([], 110), now=10.5)  # retry_every_s passed: every waiting label
    assert sorted(vectors.reads[-1]) == sorted(f"o{i}" for i in range(30, 110))
    assert out.learned == {"fraud": 80} and slot.learner.pending == {}
    assert slot.learner.examples_learned == 110 and slot.unmatched == 0


def test_snapshots_are_held_back_by_min_seconds_but_never_the_first() -> None:
    learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    slot = LearnerSlot("fraud", "fraud", learner, "1.0.0", ("x",), snapshot_every=10,
                       snapshot_min_seconds=5.0, last_snapshot_at=100.0)
    joiner = LabelJoiner([slot], None, vectors=InMemoryVectorStore())
    for i in range(10):
        learner.learn_label(f"l{i}", {"x": float(i)}, float(i % 2), T0 + i)
    assert joiner.due_snapshots(now=100.5) == [slot]  # the first snapshot: due at once
    slot.snapshots.append("1.0.1")
    slot.last_snapshot_examples, slot.last_snapshot_at = learner.examples_learned, 100.5
    for i in range(10, 35):
        learner.learn_label(f"l{i}", {"x": float(i)}, float(i % 2), T0 + i)
    assert joiner.due_snapshots(now=104.0) == []  # 25 new examples, but 3.5 s after the last one
    assert joiner.due_snapshots(now=105.5) == [slot]


def test_a_snapshot_keeps_the_waiting_labels_as_plain_values_and_restores_them_equal() -> None:
    import pickle

    from hanzo.ml.streams.learner_service import PickledModel

    learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    waiting = [label(i) for i in range(50)]
    learner.pending = {lab.label_id: (lab, 12.5 + i) for i, lab in enumerate(waiting)}
    data = PickledModel(learner).data
    # no pydantic object in the pickle: pickling thousands of them made the snapshot slow
    assert b"hanzo.ml.schemas.events" not in data
    back = pickle.loads(data)
    assert back.pending == learner.pending
    assert [type(lab) for lab, _ in back.pending.values()] == [Label] * 50
    restored = [lab.model_dump_json() for lab, _ in back.pending.values()]
    assert restored == [w.model_dump_json() for w in waiting]


def test_a_snapshot_written_before_the_plain_form_still_loads() -> None:
    import pickle

    learner = OnlineLearner("fraud", linear_model.LogisticRegression())
    learner.pending = {"l1": (label(1), 3.0)}
    old_state = {k: v for k, v in learner.__dict__.items() if k != "_linear"}  # the old __getstate__
    restored = OnlineLearner.__new__(OnlineLearner)
    restored.__setstate__(pickle.loads(pickle.dumps(old_state)))
    assert restored.pending == {"l1": (label(1), 3.0)}
