"""Worker roles: a ``role: score`` worker scores and never learns; it follows what the learner snapshots.

A scoring-only worker (``HANZO_ROLE=score``) drains a simulated shop alone: every order is scored, no label
is learned, the learner lease is never taken and its model stays the fresh one. Then a learner starts
beside it: an ``all`` worker (joins the consumer group, takes the lease) or a ``learn`` worker (consumes no
orders at all: it joins labels against the watermark the scorer publishes in Redis). It learns every label
once from the vectors the scorer stored and snapshots; the scorer swaps to that snapshot (the registry
version it serves becomes the learner's) and still learns nothing.
"""

from __future__ import annotations

import pytest
import redis

from hanzo.ml.streams.simulation.producer import Event
from tests.chaos_support import (
    BackgroundProducer,
    Worker,
    count_scores,
    labels_of,
    small_shop,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

N_ORDERS = 1500


def _version(worker: Worker) -> str | None:
    try:
        return worker.health()[1]["models"]["fraud_detection"]["version"]
    except (OSError, ValueError, KeyError):
        return None


def _orders_done(worker: Worker, orders_topic: str) -> float:
    return worker.metrics().get(f"hanzo_events_processed_total|topic={orders_topic}", 0.0)


def _labels_learned(worker: Worker) -> float:
    return worker.metrics().get("hanzo_labels_learned_total", 0.0)


def _shop() -> list[Event]:
    return small_shop(N_ORDERS)


@pytest.mark.timeout(600)  # ~35 s on a quiet machine; the waits are ceilings for a loaded one
@pytest.mark.parametrize("learner_role", ["all", "learn"])
def test_a_scoring_worker_never_learns_and_follows_the_learners_snapshots(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path, learner_role
):
    events = _shop()
    labels = labels_of(events)
    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    scorer = Worker({**env, "HANZO_ROLE": "score"}, tmp_path / "logs-scorer")
    learner = Worker({**env, "HANZO_ROLE": learner_role}, tmp_path / "logs-learner")
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
        if learner_role == "learn":
            assert _orders_done(learner, topic_names["orders"]) == 0
            assert learner.health()[0] == 200
    finally:
        for w in (scorer, learner):
            w.stop()
        client.close()


@pytest.mark.timeout(600)
def test_a_learn_worker_started_first_learns_every_label_while_the_scorer_catches_up(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
):
    """Labels reach the learner while their orders are still being scored: they wait for the published
    watermark instead of being given up, and each is learned once."""
    events = _shop()
    labels = labels_of(events)
    env = worker_env(
        kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "registry", tmp_path / "state"
    )
    learner = Worker({**env, "HANZO_ROLE": "learn"}, tmp_path / "logs-learner")
    scorer = Worker({**env, "HANZO_ROLE": "score"}, tmp_path / "logs-scorer")
    client = redis.Redis.from_url(redis_url)
    try:
        learner.start()
        lease = f"{key_prefix}hanzo:learner-lease"
        wait_for("the learner takes the lease", lambda: client.get(lease) is not None, 90, learner)
        producer = BackgroundProducer(events, kafka_bootstrap, topic_names, rate=1000.0)
        producer.start()
        producer.join(120)
        assert producer.error is None, producer.error
        scorer.start()  # the labels are all there; the orders get scored from now on
        wait_for("every order scored", lambda: count_scores(client, key_prefix) >= N_ORDERS, 180, scorer)
        wait_for("every label learned", lambda: (learner.examples() or 0) >= len(labels), 180, learner)
        assert learner.examples() == len(labels)
        assert _labels_learned(learner) == len(labels)
        assert _orders_done(learner, topic_names["orders"]) == 0
        assert _labels_learned(scorer) == 0
    finally:
        for w in (learner, scorer):
            w.stop()
        client.close()
