"""The embedded stack against real processes: up / status / down, env-provided services, topics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams import embedded
from hanzo.ml.streams.cli import run
from hanzo.ml.streams.embedded import (
    check_kafka,
    check_redis,
    down,
    free_port,
    process_runs,
    resolve_services,
    up,
)
from hanzo.ml.streams.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for an own stack in a temporary state dir; whatever it left running is stopped after."""
    settings = Settings(state_dir=tmp_path / "hanzo", kafka_port=free_port(), redis_port=free_port())
    yield settings
    down(settings)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _run_verb(verb: str, settings: Settings) -> int:
    return run([verb], settings)


def test_up_status_down(stack_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    state = up(stack_settings)
    assert state.kafka.started and state.redis.started
    assert state.kafka.port == stack_settings.kafka_port
    assert state.redis.port == stack_settings.redis_port
    assert not state.reused
    check_kafka(state.kafka.address)
    check_redis(state.redis.address)
    recorded = embedded.StackState.read(stack_settings.state_dir / "stack.json")
    assert recorded is not None and recorded.kafka.pid == state.kafka.pid
    assert resolve_services(stack_settings).redis_url == state.redis.address
    assert state.kafka.log_path is not None and state.kafka.log_path.exists()

    again = up(stack_settings)  # a second `up` reuses the running stack
    assert again.reused
    assert (again.kafka.pid, again.redis.pid) == (state.kafka.pid, state.redis.pid)
    assert any("reusing" in note for note in again.notes)

    assert _run_verb("status", stack_settings) == 0
    assert str(state.kafka.pid) in capsys.readouterr().err

    stopped = down(stack_settings)
    assert len(stopped) == 2
    for svc in (state.kafka, state.redis):
        assert svc.pid is not None and svc.binary is not None
        assert not process_runs(svc.pid, svc.binary)
    assert not (stack_settings.state_dir / "stack.json").exists()
    with pytest.raises(ServiceUnavailableError, match=state.kafka.address):
        check_kafka(state.kafka.address, timeout=1.0)
    assert _run_verb("status", stack_settings) == 1


def test_up_verb_prints_exports_and_creates_topics(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_verb("up", stack_settings) == 0
    out = capsys.readouterr().out
    services = resolve_services(stack_settings)
    assert (
        f"export HANZO_KAFKA_BOOTSTRAP={services.kafka_bootstrap} HANZO_REDIS_URL={services.redis_url}" in out
    )

    async def topics() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    assert {"orders", "events", "labels", "scores", "dead-letters"} <= set(asyncio.run(topics()))
    assert _run_verb("down", stack_settings) == 0
    assert "stopped kafka" in capsys.readouterr().err


def test_taken_port_with_pick_free_port_moves_and_says_so(tmp_path: Path, silent_port: int) -> None:
    settings = Settings(
        state_dir=tmp_path, kafka_port=silent_port, redis_port=free_port(), pick_free_port=True
    )
    try:
        state = up(settings)
        assert state.kafka.port != silent_port
        assert any(str(silent_port) in note and str(state.kafka.port) in note for note in state.notes)
        check_kafka(state.kafka.address)
    finally:
        down(settings)


def test_password_protected_redis(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        kafka_bootstrap=None,
        redis_port=free_port(),
        kafka_port=free_port(),
        redis_password="p w\"'$x",
    )
    try:
        state = up(settings)
        check_redis(state.redis.address, password="p w\"'$x")
        with pytest.raises(ServiceUnavailableError, match="HANZO_REDIS_PASSWORD"):
            check_redis(state.redis.address, password="wrong")
        assert state.redis.pid is not None
        cmdline = Path(f"/proc/{state.redis.pid}/cmdline").read_bytes()
        assert b"p w" not in cmdline
    finally:
        down(settings)


def test_env_services_are_used_and_nothing_is_started(
    tmp_path: Path, kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(state_dir=tmp_path, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url)
    state = up(settings)
    for svc in (state.kafka, state.redis):
        assert not svc.started and svc.pid is None and svc.binary is None
    assert state.kafka.address == kafka_bootstrap
    assert not (tmp_path / "tansu.log").exists() and not (tmp_path / "redis").exists()
    assert down(settings) == []
    redis_client.set(f"{key_prefix}alive", "1")  # the session services still run
    assert redis_client.get(f"{key_prefix}alive") == b"1"
    check_kafka(kafka_bootstrap)


@pytest.mark.timeout(30)
def test_unreachable_kafka_fails_naming_the_address(silent_port: int) -> None:
    address = f"127.0.0.1:{silent_port}"
    with pytest.raises(ServiceUnavailableError, match=f"{address}.*HANZO_KAFKA_BOOTSTRAP"):
        check_kafka(address, timeout=1.0)
    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailableError, match=closed):
        check_kafka(closed, timeout=1.0)


@pytest.mark.timeout(30)
def test_unreachable_redis_fails_naming_the_address(silent_port: int) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"
    with pytest.raises(ServiceUnavailableError, match=f"127.0.0.1:{silent_port}.*HANZO_REDIS_URL"):
        check_redis(url, timeout=1.0)


@pytest.mark.timeout(30)
def test_up_with_an_unreachable_env_broker_starts_nothing(tmp_path: Path, silent_port: int) -> None:
    settings = Settings(
        state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{silent_port}", redis_port=free_port()
    )
    with pytest.raises(ServiceUnavailableError, match=str(silent_port)):
        up(settings)
    assert not (tmp_path / "stack.json").exists()
    assert not (tmp_path / "redis").exists()


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str, topic_names: dict[str, str]) -> None:
    wanted = {topic_names["orders"]: 3, topic_names["labels"]: 1}
    await ensure_topics(kafka_bootstrap, wanted)
    await ensure_topics(kafka_bootstrap, wanted)  # existing topics are fine
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(wanted))
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == wanted
    check_kafka(kafka_bootstrap)  # also works from inside a running event loop


@pytest.mark.timeout(60)
def test_start_on_a_taken_port_fails_naming_address_and_log(tmp_path: Path, silent_port: int) -> None:
    log = tmp_path / "tansu.log"
    children = dict(embedded._CHILDREN)
    with pytest.raises(ServiceUnavailableError) as info:
        embedded.start_broker(silent_port, log, timeout=10.0)
    assert f"127.0.0.1:{silent_port}" in str(info.value) and str(log) in str(info.value)
    with pytest.raises(ServiceUnavailableError) as info:
        embedded.start_redis(silent_port, tmp_path / "redis", timeout=10.0)
    assert f"127.0.0.1:{silent_port}" in str(info.value) and "redis-server.log" in str(info.value)
    assert embedded._CHILDREN == children  # the failed processes were reaped
