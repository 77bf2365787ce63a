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


def test_a_restarted_worker_resumes_without_a_replay(kafka_bootstrap, redis_url, topic_names, key_prefix,
                                                     tmp_path) -> None:
    events = [e for e in Simulator(SimulatorConfig(seed=9, orders=1200, customers=120, orders_per_day=400))
              .events() if not isinstance(e, Label)]
    first, second = events[:-200], events[-200:]
    kinds = {"order": topic_names["orders"], "customer_event": topic_names["events"],
             "label": topic_names["labels"]}
    asyncio.run(produce(first, kafka_bootstrap, kinds))
    worker = Worker(
        worker_env(kafka_bootstrap, redis_url, topic_names, key_prefix, tmp_path / "reg", tmp_path / "state"),
        tmp_path,
    )
    worker.start()
    try:
        wait_for("the first events processed", lambda: worker.processed() == len(first), 180, worker)
        worker.stop()
        worker.start()
        wait_for("the new incarnation's partitions", lambda: worker.assigned_after() is not None, 180, worker)
        asyncio.run(produce(second, kafka_bootstrap, kinds))
        wait_for("the later events processed", lambda: worker.processed() >= len(second), 180, worker)
        assert "starting a new broker epoch" not in worker.log_path.read_text()
        assert worker.processed() == len(second)  # what was processed before is not read again
    finally:
        worker.stop()
