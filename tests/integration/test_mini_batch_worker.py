"""Mini-batch learning in the real worker: ``training.mini_batch`` on, real broker and Redis, each label once.

The fraud pipeline with ``training.mini_batch: {size: 64}`` runs in ``hanzo-ml worker``. Every label is
joined with its scored vector and learned once in ``learn_many`` chunks; labels produced a second time
are read and learned not again; the latest snapshot records the same count.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
import yaml

from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import Label
from hanzo.ml.streams.runtime import resolve_spec_path
from hanzo.ml.streams.simulation import produce
from tests.chaos_support import Worker, count_scores, labels_of, small_shop, wait_for, worker_env

pytestmark = pytest.mark.integration

N_ORDERS = 1500
SIZE = 64


def _labels_consumed(worker: Worker) -> int:
    try:
        return int(worker.health()[1]["labels"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.timeout(600)  # ~30 s on a quiet machine; the waits are ceilings for a loaded one
def test_a_mini_batch_learner_in_the_worker_learns_every_label_once(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
):
    data = yaml.safe_load(resolve_spec_path("fraud_detection").read_text())
    data["training"] = {**data["training"], "mini_batch": {"size": SIZE}}
    spec_path = tmp_path / "fraud_detection.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    assert PipelineSpec.from_yaml(spec_path).training.mini_batch is not None

    events = small_shop(N_ORDERS)
    labels = labels_of(events)
    label_records = [e for e in events if isinstance(e, Label)]
    topics = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }
    registry_dir = tmp_path / "registry"
    env = worker_env(kafka_bootstrap, redis_url, topic_names, key_prefix, registry_dir, tmp_path / "state")
    worker = Worker(env, tmp_path / "logs", args=["--pipeline", str(spec_path)])
    client = redis.Redis.from_url(redis_url)
    try:
        worker.start()
        wait_for("the worker up", lambda: bool(worker.metrics()), 90, worker)
        asyncio.run(produce(events, kafka_bootstrap, topics))
        wait_for("every order scored", lambda: count_scores(client, key_prefix) >= N_ORDERS, 180, worker)
        wait_for("every label learned", lambda: (worker.examples() or 0) >= len(labels), 180, worker)
        assert worker.examples() == len(labels)
        assert worker.metrics()["hanzo_labels_learned_total"] == len(labels)
        assert f"fraud_detection learns in mini-batches of up to {SIZE} labels" in worker.log_path.read_text()

        # the same labels again: read, joined, and learned not again
        consumed = _labels_consumed(worker)
        asyncio.run(produce(label_records, kafka_bootstrap, topics))
        wait_for(
            "the re-produced labels read",
            lambda: _labels_consumed(worker) >= consumed + len(label_records),
            120,
            worker,
        )
        assert worker.examples() == len(labels)
        assert worker.metrics()["hanzo_labels_learned_total"] == len(labels)
    finally:
        worker.stop()
        client.close()

    # the latest snapshot holds every label learned once, with the offsets of at least the first pass
    latest = Registry(registry_dir).list_versions("fraud_detection")[-1].metadata
    assert latest["examples_learned"] == len(labels)
    assert sum(latest["offsets"].values()) >= len(label_records)
