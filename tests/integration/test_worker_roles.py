"""Worker roles: a ``role: score`` worker scores and never learns; it follows what the learner snapshots.

A scoring-only worker (``HANZO_ROLE=score``) drains a simulated shop alone: every order is scored, no label
is learned, the learner lease is never taken and its model stays the fresh one. Then an ``all`` worker joins
the consumer group: it takes the lease, learns every label once from the vectors the scorer stored, and
snapshots; the scorer swaps to that snapshot (the registry version it serves becomes the learner's) and
still learns nothing.
"""

from __future__ import annotations

import pytest
import redis

from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from tests.chaos_support import BackgroundProducer, Worker, count_scores, labels_of, wait_for, worker_env

pytestmark = pytest.mark.integration

N_ORDERS = 1500


def _version(worker: Worker) -> str | None:
    try:
        return worker.health()[1]["models"]["fraud_detection"]["version"]
    except (OSError, ValueError, KeyError):
        return None


def _labels_learned(worker: Worker) -> float:
    return worker.metrics().get("hanzo_labels_learned_total", 0.0)


@pytest.mark.timeout(600)  # ~60 s on a quiet machine; the waits are ceilings for a loaded one
def test_a_scoring_worker_never_learns_and_follows_the_learners_snapshots(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
):
    sim = Simulator(
        SimulatorConfig(
            seed=7,
            orders=N_ORDERS,
            customers=200,
            orders_per_day=3000,
            browse_events_per_order=0.0,
            chargeback_delay_days=(0.1, 0.5),
            settle_delay_days=(0.1, 0.5),
            fraud_rate=0.05,
        )
    )
    events = list(sim.events())
    labels = labels_of(events)
    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    scorer = Worker({**env, "HANZO_ROLE": "score"}, tmp_path / "logs-scorer")
    learner = Worker(env, tmp_path / "logs-learner")
    client = redis.Redis.from_url(redis_url)
    lease = f"{key_prefix}hanzo:learner-lease"
    try:
        scorer.start()
        wait_for("the scorer up", lambda: bool(scorer.metrics()), 90, scorer)
        producer = BackgroundProducer(events, kafka_bootstrap, topic_names, rate=2000.0)
        producer.start()
        producer.join(120)
        assert producer.error is None, producer.error
        wait_for("every order scored", lambda: count_scores(client, key_prefix) >= N_ORDERS, 180, scorer)
        assert _labels_learned(scorer) == 0
        assert scorer.examples() == 0 and _version(scorer) is None
        assert not client.exists(lease), "a scoring worker took the learner lease"

        learner.start()
        wait_for("the learner takes the lease", lambda: client.get(lease) is not None, 90, learner)
        wait_for("every label learned", lambda: (learner.examples() or 0) >= len(labels), 180, learner)
        wait_for("a snapshot of the learner", lambda: _version(learner) is not None, 60, learner)
        wait_for(
            "the scorer serving the learner's snapshot",
            lambda: _version(scorer) is not None and _version(scorer) == _version(learner),
            60,
            scorer,
        )
        assert learner.examples() == len(labels)  # each label once
        assert _labels_learned(learner) == len(labels)
        assert _labels_learned(scorer) == 0
        assert 0 < (scorer.examples() or 0) <= len(labels)  # the snapshot's state, not its own learning
    finally:
        for w in (scorer, learner):
            w.stop()
        client.close()
