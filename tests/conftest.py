"""Session fixtures: a real Tansu broker and a real redis-server on free ports, stopped by pid at the end.

They are started with the same functions as ``hanzo-ml up`` (streams.embedded) and only on first use, so a
unit-test run starts nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from hanzo.ml.streams.embedded import binary_of, free_port, start_broker, start_redis, stop_process


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this session."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc.pid, binary_of(proc))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Tansu broker started for this session."""
    port = free_port()
    proc = start_broker(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc.pid, binary_of(proc))


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def topic_names() -> dict[str, str]:
    """Topic names no other test uses."""
    suffix = uuid.uuid4().hex[:8]
    return {t: f"{t}-{suffix}" for t in ("orders", "events", "labels", "scores", "dead-letters")}
