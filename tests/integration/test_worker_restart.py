"""A worker stopped and started again resumes where it stopped: no new broker epoch, no replay.

The embedded broker (Tansu) answers ``ListOffsets`` (latest) with an end below the last offset + 1 of a
partition whose last produce request carried several records; the worker must not take that for a log
that went backwards (which clears the fences and replays every topic from the beginning).
"""

from __future__ import annotations

import asyncio

import pytest

from hanzo.ml.schemas.events import Label
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce
from tests.chaos_support import Worker, wait_for, worker_env

pytestmark = pytest.mark.integration


def test_a_restarted_worker_resumes_without_a_replay(
    kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path
) -> None:
    config = SimulatorConfig(
        seed=9,
        orders=1200,
        customers=120,
        orders_per_day=400,
        chargeback_delay_days=(0.1, 0.5),
        settle_delay_days=(0.1, 0.5),
    )
    history = list(Simulator(config).events())
    first, second = history[:-300], history[-300:]
    labels_first = sum(isinstance(e, Label) for e in first)
    labels_second = sum(isinstance(e, Label) for e in second)
    assert labels_first and labels_second
    kinds = {
        "order": topic_names["orders"],
        "customer_event": topic_names["events"],
        "label": topic_names["labels"],
    }
    asyncio.run(produce(first, kafka_bootstrap, kinds))
    worker = Worker(
        worker_env(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "reg", tmp_path / "state"),
        tmp_path,
    )

    def learned() -> float:
        try:
            return worker.metrics().get("hanzo_labels_learned_total", 0.0)
        except (OSError, ValueError):
            return 0.0

    worker.start()
    try:
        wait_for(
            "the first events processed", lambda: worker.processed() == len(first) - labels_first, 180, worker
        )
        wait_for("the first labels learned", lambda: learned() == labels_first, 180, worker)
        worker.stop()
        worker.start()
        wait_for("the new incarnation's partitions", lambda: worker.assigned_after() is not None, 180, worker)
        asyncio.run(produce(second, kafka_bootstrap, kinds))
        wait_for(
            "the later events processed",
            lambda: worker.processed() >= len(second) - labels_second,
            180,
            worker,
        )
        wait_for("the later labels learned", lambda: learned() >= labels_second, 180, worker)
        log = worker.log_path.read_text()
        assert (
            "starting a new broker epoch" not in log and "restart from the beginning of a new log" not in log
        )
        # what was processed before is not read again
        assert (worker.processed(), learned()) == (len(second) - labels_second, labels_second)
    finally:
        worker.stop()
