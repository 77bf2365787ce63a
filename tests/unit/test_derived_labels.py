"""Derived churn labels: the deadline queue's rule, and labels recomputed from the simulator's own events."""

from __future__ import annotations

from collections import defaultdict

import pytest

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features import FeatureStore
from hanzo.ml.learners.derived_labels import (
    DAY_MS,
    DerivedLabeler,
    InMemoryDeadlineQueue,
    add_churn_features,
    reference_subject,
)
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.schemas.events import Order
from hanzo.ml.streams.simulation import BGNBD, Simulator, SimulatorConfig
from hanzo.ml.streams.train import offline_components, replay

H = 90 * DAY_MS
T0 = 1_767_225_600_000


def test_each_order_closes_the_previous_reference_and_deadlines_fire_by_event_time():
    q = InMemoryDeadlineQueue()
    assert q.observe([("a", T0), ("b", T0)], T0, H) == []
    # an order within the horizon closes a's reference with 0 at the order's time
    assert q.observe([("a", T0 + 10 * DAY_MS)], T0 + 10 * DAY_MS, H) == [(f"a:{T0}", 0, T0 + 10 * DAY_MS)]
    # the watermark just before b's due time fires nothing; at the due time it fires 1
    assert q.observe([], T0 + H - 1, H) == []
    assert q.observe([], T0 + H, H) == [(f"b:{T0}", 1, T0 + H)]
    # an order after the horizon (in the same batch as its own time) resolves the open reference as 1
    late = T0 + 10 * DAY_MS + H + 5
    assert q.observe([("a", late)], late, H) == [(f"a:{T0 + 10 * DAY_MS}", 1, T0 + 10 * DAY_MS + H)]
    assert len(q) == 1


def test_redelivered_and_out_of_order_orders_change_nothing():
    q = InMemoryDeadlineQueue()
    q.observe([("a", T0 + DAY_MS)], T0 + DAY_MS, H)
    assert q.observe([("a", T0 + DAY_MS)], T0 + DAY_MS, H) == []  # the same order again
    assert q.observe([("a", T0)], T0 + DAY_MS, H) == []  # older than the open reference
    assert q.observe([], T0 + DAY_MS + H, H) == [(f"a:{T0 + DAY_MS}", 1, T0 + DAY_MS + H)]


def test_labeler_makes_labels_for_the_joiner():
    labeler = DerivedLabeler("churn_prediction", "churned_90d", 90, InMemoryDeadlineQueue())
    labeler.observe([("c1", T0)], T0)
    (label,) = labeler.observe([], T0 + H)
    assert (label.target, label.subject_id, label.value, label.event_time) == (
        "churned_90d",
        reference_subject("c1", T0),
        1.0,
        T0 + H,
    )
    assert label.label_id == f"churn_prediction:c1:{T0}"


def expected_labels(orders: list[Order], watermark: int, horizon_ms: int) -> dict[str, tuple[int, int]]:
    """Our own recomputation: each order's label from the customer's next order and the final watermark."""
    by_customer: dict[str, list[int]] = defaultdict(list)
    for o in orders:
        by_customer[o.customer_id].append(o.event_time)
    out: dict[str, tuple[int, int]] = {}
    for cid, times in by_customer.items():
        times.sort()
        for i, t in enumerate(times):
            nxt = times[i + 1] if i + 1 < len(times) else None
            if nxt is not None and nxt < t + horizon_ms:
                out[reference_subject(cid, t)] = (0, nxt)
            elif t + horizon_ms <= watermark:
                out[reference_subject(cid, t)] = (1, t + horizon_ms)
    return out


@pytest.fixture(scope="module")
def churn_history():
    sim = Simulator(
        SimulatorConfig(
            seed=21,
            orders=700,
            customers=60,
            orders_per_day=5,
            signups_per_day=0.2,
            browse_events_per_order=0.5,
            churn=BGNBD(r=2, a=1, b=40),  # a small base: low drop-out, so it lasts the stream
        )
    )
    events = sorted(sim.events(), key=lambda e: e.event_time)
    return sim, events


def small_churn_spec() -> PipelineSpec:
    data = PipelineSpec.shipped("churn_prediction").model_dump()
    data["model"] = {"type": "gradient_boosting", "hyperparameters": {"n_estimators": 3, "max_depth": 3}}
    return PipelineSpec.from_dict(data)


def test_labels_from_the_worker_path_match_a_recomputation_from_the_simulator(churn_history):
    sim, events = churn_history
    spec = small_churn_spec()
    processor, joiner = offline_components([spec])
    emitted: dict[str, tuple[int, int]] = {}
    original = processor.scorers[0].labeler
    assert original is not None

    class Recording(DerivedLabeler):
        def observe(self, references, watermark_ms):
            labels = super().observe(references, watermark_ms)
            for lab in labels:
                assert lab.subject_id not in emitted, lab.subject_id
                emitted[lab.subject_id] = (int(lab.value), lab.event_time)
            return labels

    processor.scorers[0].labeler = Recording(original.model, original.target, 90, InMemoryDeadlineQueue())
    stats = replay(events, processor, joiner, batch_size=300)

    orders = [e for e in events if isinstance(e, Order)]
    # the worker's event-time watermark is driven by orders only (the lowest orders partition), so a
    # customer-event stream running ahead never fires a churn deadline before the orders prove it
    watermark = max(o.event_time for o in orders)
    expected = expected_labels(orders, watermark, H)
    assert emitted == expected
    assert stats.derived_labels == len(expected)
    assert sum(v for v, _ in expected.values()) > 10 and sum(1 - v for v, _ in expected.values()) > 10
    # every label was joined with the vector stored at its reference point: all learned or held out
    assert joiner.slots[0].learner.examples_learned == len(expected)
    assert joiner.slots[0].unmatched == 0

    # ground truth: a customer the simulator churned whose last order is older than the horizon is labelled 1
    last: dict[str, int] = {}
    for o in orders:
        last[o.customer_id] = max(last.get(o.customer_id, 0), o.event_time)
    churned = [c for c in last if sim.churned_at(c) is not None and last[c] + H <= watermark]
    assert churned
    for c in churned:
        assert last[c] <= sim.churned_at(c)
        assert emitted[reference_subject(c, last[c])] == (1, last[c] + H)


def test_churn_features_are_defined_from_stored_features():
    store = FeatureStore()
    assert add_churn_features(store) == ["customer_lifetime_value", "days_since_last_order"]
    names = {f.name for f in store.list_features()}
    assert {"customer_lifetime_value", "days_since_last_order", "support_tickets_30d"} <= names


def test_churn_features_need_their_base_features():
    with pytest.raises(ConfigError, match="lifetime_spend"):
        add_churn_features(FeatureStore(definitions=[]))
