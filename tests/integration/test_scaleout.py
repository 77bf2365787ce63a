"""Scale-out: workers join and leave one consumer group mid-stream and nothing is lost, split or doubled.

Two real workers (``python -m streams.cli worker``, one consumer group, one registry folder) consume a
simulated shop produced in three parts at a steady rate: the first part goes to the two; while the second
flows a third worker joins, and once it holds orders partitions the first is stopped with SIGTERM; the
third part goes to the remaining two. After the stream is drained:

* every order has exactly one score record (its key exists, and there are no more score keys than orders);
* every customer's, product's and category's features equal the independent recomputation from the
  produced events (:func:`tests.chaos_support.compare_features`): no order lost or counted twice, and no
  entity's windows split between workers (an event applied out of order by a second owner would show as a
  late event and a wrong window);
* one writer per model: the first worker takes the learner lease (:mod:`streams.leadership`) and is the only
  one that learns while it holds it; SIGTERM makes it snapshot and release the lease, and one of the two
  others takes over from that snapshot, so the workers' ``hanzo_labels_learned_total`` add up to exactly the
  number of labels, and the final holder's model has learned every label once;
* the partitions were split: each of the three workers processed orders.

Re-delivery around a rebalance is allowed (the effects are idempotent), so it is not asserted on.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import redis

from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from tests.chaos_support import (
    BackgroundProducer,
    Worker,
    compare_features,
    count_scores,
    labels_of,
    missing_scores,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

N_ORDERS = 3000
PART_SECONDS = 12


def _orders_done(worker: Worker, orders_topic: str) -> float:
    try:
        return worker.metrics().get(f"hanzo_events_processed_total|topic={orders_topic}", 0.0)
    except (OSError, ValueError):
        return 0.0


def _holds(worker: Worker, topic: str) -> bool:
    """Whether the worker's last assignment (from its log) holds a partition of ``topic``."""
    found = re.findall(r"partitions assigned: \[(.*)\]", worker.log_tail(200_000))
    return bool(found) and f"'{topic}/" in found[-1]


def _learned(workers: tuple[Worker, ...], n: int) -> Callable[[], bool]:
    return lambda: max((w.examples() or 0) for w in workers) >= n


def _labels_learned(worker: Worker) -> float:
    """The worker's ``hanzo_labels_learned_total`` (what this process learned itself)."""
    return worker.metrics().get("hanzo_labels_learned_total", 0.0)


def _last_snapshot_examples(worker: Worker) -> int:
    """Examples of the last snapshot the worker logged (its final one after SIGTERM)."""
    found = re.findall(r"snapshot fraud_detection \S+ \((\d+) examples\)", worker.log_tail(10_000_000))
    assert found, worker.log_tail()
    return int(found[-1])


@pytest.mark.timeout(600)  # ~90 s on a quiet machine; the waits are ceilings for a loaded one
def test_workers_join_and_leave_mid_stream(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path):
    sim = Simulator(
        SimulatorConfig(
            seed=41,
            orders=N_ORDERS,
            customers=300,
            orders_per_day=3000,
            browse_events_per_order=0.3,
            chargeback_delay_days=(0.1, 0.5),
            settle_delay_days=(0.1, 0.5),
            fraud_rate=0.05,
        )
    )
    events = list(sim.events())
    order_ids = [e.order_id for e in events if e.kind == "order"]
    labels = labels_of(events)
    assert len(order_ids) == N_ORDERS and len(labels) == N_ORDERS

    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    first, second, third = (Worker(env, tmp_path / f"logs-{name}") for name in ("a", "b", "c"))
    # three parts in sequence, so orders flow before, during and after each change of the group however
    # long a worker takes to start on a loaded machine
    cut = len(events) // 3
    parts = [events[:cut], events[cut : 2 * cut], events[2 * cut :]]
    producers = [
        BackgroundProducer(part, kafka_bootstrap, topic_names, rate=len(part) / PART_SECONDS)
        for part in parts
    ]
    client = redis.Redis.from_url(redis_url)
    orders = topic_names["orders"]
    try:
        first.start()
        # the first takes the learner lease before the others start, so it is the one removed below
        lease = f"{key_prefix}hanzo:learner-lease"
        wait_for("the first worker's lease", lambda: bool(client.exists(lease)), 90, first)
        second.start()
        wait_for("the second worker up", lambda: bool(second.metrics()), 90, second)
        producers[0].start()
        wait_for("both workers processing orders", lambda: _orders_done(first, orders) > 0, 90, first)
        wait_for("both workers processing orders", lambda: _orders_done(second, orders) > 0, 90, second)
        producers[0].join(PART_SECONDS + 30)
        producers[1].start()
        third.start()  # joins while the second part flows
        wait_for("orders partitions for the third worker", lambda: _holds(third, orders), 90, third)
        first_done = _orders_done(first, orders)
        # one writer: while the first holds the lease, the others score but learn nothing
        assert _labels_learned(second) == 0 and _labels_learned(third) == 0
        assert _labels_learned(first) > 0
        first.stop()  # SIGTERM: the batch in flight commits, the group rebalances to the other two
        assert first.proc is not None and first.proc.returncode is not None
        producers[1].join(PART_SECONDS + 30)
        producers[2].start()
        producers[2].join(PART_SECONDS + 30)
        for p in producers:
            assert p.error is None, p.error
            assert not p.is_alive()
        wait_for("every order scored", lambda: count_scores(client, key_prefix) >= N_ORDERS, 120, second)
        wait_for("every label learned", _learned((second, third), len(labels)), 120, second)

        assert missing_scores(client, key_prefix, order_ids) == []
        assert count_scores(client, key_prefix) == N_ORDERS
        report = compare_features(client, key_prefix, events)
        assert report.customers > 250 and report.values_checked > 250 * 15
        assert report.entities["product"] > 10 and report.entities["category"] > 3  # fed from every partition
        assert report.lost_orders == 0 and report.double_counted_orders == 0
        assert report.mismatches == []
        # the first learned up to its final snapshot; the next holder from there: each label once in all
        learned = _last_snapshot_examples(first) + _labels_learned(second) + _labels_learned(third)
        assert learned == len(labels)
        assert max(second.examples() or 0, third.examples() or 0) == len(labels)
        done = [first_done, _orders_done(second, orders), _orders_done(third, orders)]
        assert all(d > 0 for d in done), done
    finally:
        for w in (first, second, third):
            w.stop()
        client.close()
