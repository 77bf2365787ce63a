"""Pure parts of the embedded stack: ports, the state file, the taken-port message, the pid checks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams import embedded
from hanzo.ml.streams.embedded import (
    ServiceState,
    StackState,
    cmdline_matches,
    down,
    free_port,
    port_is_free,
    process_runs,
    resolve_services,
    stop_process,
    up,
)
from hanzo.ml.streams.topics import LOGICAL_TOPICS, topic_map


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _state(kafka_pid: int | None, binary: str | None, tmp: Path) -> StackState:
    return StackState(
        kafka=ServiceState(
            name="kafka",
            address="127.0.0.1:1",
            port=1,
            pid=kafka_pid,
            started=kafka_pid is not None,
            binary=binary,
            log_path=tmp / "tansu.log",
        ),
        redis=ServiceState(name="redis", address="redis://127.0.0.1:2/0", port=2, pid=None, started=False),
        notes=["kafka: port 9092 was taken; using 1"],
    )


def test_free_port_is_free_and_listening_port_is_not(listening: int) -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)
    assert not port_is_free(listening)


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "stack.json"
    state = _state(1234, "/opt/tansu", tmp_path)
    state.write(path)
    again = StackState.read(path)
    assert again == state
    assert again is not None and again.kafka.log_path == tmp_path / "tansu.log"
    assert again.created_at.tzinfo is not None
    assert "reused" not in path.read_text()
    assert StackState.read(tmp_path / "missing.json") is None


def test_unreadable_state_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="stack.json"):
        StackState.read(path)


def test_taken_port_names_the_port_and_both_fixes(tmp_path: Path, listening: int) -> None:
    settings = Settings(state_dir=tmp_path, kafka_port=listening, redis_port=free_port())
    with pytest.raises(ConfigError) as info:
        up(settings)
    message = str(info.value)
    assert str(listening) in message
    assert "HANZO_KAFKA_PORT=" in message
    assert "HANZO_PICK_FREE_PORT=1" in message
    assert not (tmp_path / "stack.json").exists()  # nothing was started or recorded


def test_taken_redis_port_names_its_variable(tmp_path: Path, listening: int) -> None:
    settings = Settings(state_dir=tmp_path, kafka_port=free_port(), redis_port=listening)
    with pytest.raises(ConfigError, match=f"{listening}.*HANZO_REDIS_PORT="):
        up(settings)


def test_cmdline_matching() -> None:
    assert cmdline_matches(b"/bin/tansu\x00broker\x00", "/bin/tansu")
    assert cmdline_matches(b"/bin/redis-server 127.0.0.1:6379\x00\x00", "/bin/redis-server")
    assert not cmdline_matches(b"/bin/tansu-other\x00", "/bin/tansu")
    assert not cmdline_matches(b"/bin/redis-server-x 127.0.0.1:1\x00", "/bin/redis-server")
    assert not cmdline_matches(b"", "/bin/tansu")  # zombies show an empty cmdline


def test_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A recorded pid that now runs another program (here: this test process) survives `down`."""
    me = os.getpid()
    my_binary = Path(f"/proc/{me}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert process_runs(me, my_binary)
    assert not process_runs(me, "/opt/tansu/not-this-binary")
    assert not stop_process(me, "/opt/tansu/not-this-binary")
    settings = Settings(state_dir=tmp_path)
    _state(me, "/opt/tansu/not-this-binary", tmp_path).write(tmp_path / "stack.json")
    assert down(settings) == []
    assert not (tmp_path / "stack.json").exists()
    assert process_runs(me, my_binary)


def test_stop_process_checks_the_binary_then_stops() -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    proc = subprocess.Popen([sleep, "30"])  # noqa: S603
    try:
        deadline = time.monotonic() + 5  # the child shows the new binary only once it has exec'd
        while not process_runs(proc.pid, sleep) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not stop_process(proc.pid, "/usr/bin/not-sleep")
        assert proc.poll() is None
        assert process_runs(proc.pid, sleep)
        embedded._CHILDREN[proc.pid] = proc  # as start_* does, so stop_process reaps it
        assert stop_process(proc.pid, sleep, grace=5.0)
        assert proc.returncode is not None
        assert not process_runs(proc.pid, sleep)
        assert proc.pid not in embedded._CHILDREN
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_down_without_state_stops_nothing(tmp_path: Path) -> None:
    assert down(Settings(state_dir=tmp_path)) == []


def test_resolve_services_prefers_settings_then_state(tmp_path: Path) -> None:
    given = Settings(state_dir=tmp_path, kafka_bootstrap="k:9092", redis_url="redis://r:6379/0")
    assert resolve_services(given).kafka_bootstrap == "k:9092"
    with pytest.raises(ServiceUnavailableError, match="hanzo-ml up"):
        resolve_services(Settings(state_dir=tmp_path))
    _state(None, None, tmp_path).write(tmp_path / "stack.json")
    services = resolve_services(Settings(state_dir=tmp_path, redis_url="redis://other:1/0"))
    assert services.kafka_bootstrap == "127.0.0.1:1"
    assert services.redis_url == "redis://other:1/0"


def test_resolve_services_refuses_a_dead_recorded_process(tmp_path: Path) -> None:
    _state(os.getpid(), "/opt/tansu/gone", tmp_path).write(tmp_path / "stack.json")
    with pytest.raises(ServiceUnavailableError, match="no longer running"):
        resolve_services(Settings(state_dir=tmp_path))


def test_topic_map_covers_the_logical_topics() -> None:
    names = topic_map(Settings(topic_dead_letters="dlq", topic_scores="s"))
    assert tuple(names) == LOGICAL_TOPICS
    assert names["dead-letters"] == "dlq"
    assert names["scores"] == "s"
    assert names["orders"] == "orders"
