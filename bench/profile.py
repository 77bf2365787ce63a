"""Where an order's microseconds go: the worker's CPU by part (py-spy) and Redis's by command.

One real worker (``python -m streams.cli worker``, fraud pipeline, customer, product and category features,
learning the labels that flow beside the orders) drains a prefilled stream on an embedded Tansu broker and
a redis-server of its own. Once it is warm, for ``--seconds``:

- ``py-spy record --gil --nonblocking`` samples the thread holding the GIL: the share of the samples of
  each part times the worker's CPU time per order (``/proc/<pid>/stat``, every thread) gives
  ``worker_cpu_us_per_order_by_part``. A sample goes to the innermost frame that names a part: a library
  the hot path calls (``redis`` client, ``pydantic`` validation, ``json``, ``prometheus_client``, Kafka
  client, Faust) or else the innermost module of ours (``features/store.py``, ``learners/online.py``...);
  River and numpy frames go to our module that called them, so the model's predict and learn show under
  ``learners/...``, the detectors under ``monitor/...``.
- ``CONFIG RESETSTAT`` then ``INFO cpu`` and ``INFO commandstats`` give ``redis_us_per_order`` (the server
  process's CPU, network included) and ``redis_us_per_order_by_command`` (the server's time in each
  command; ``evalsha``, the feature scripts, includes the commands the scripts call, which are also
  counted under their own names, and all of it is wall time, so a busy machine inflates it: read it as
  shares, not as a sum).

Figures are per order processed in the window (``orders``), with the Redis commands per order
(``redis_calls_per_order_by_command``) and the broker's (Tansu's) CPU per order. ``--role score`` samples
a scoring worker (``HANZO_ROLE=score``, which never learns) instead: alone, so Redis's figures are its
own, or with ``--learner`` beside a ``role: learn`` worker (whose CPU per order is reported apart).

Run alone: ``.venv/bin/python -m bench.profile [--orders N] [--seconds S] [--role score [--learner]]``;
it writes section ``profile`` (``profile_score`` for ``--role score``) of ``bench/results.json`` and
prints the tables. The machine's noise moves the totals; the shares within one run are what to read.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from bench.e2e import TOPICS, Prefilled, prefilled
from bench.results import machine, write_section
from bench.scaleout import BenchWorker, start_group, stop_group
from tests.chaos_support import worker_env

console = Console()

#: Libraries that are a part of their own wherever they are called from (innermost match wins).
LIBRARY_PARTS: dict[str, str] = {
    "redis": "Redis client (redis-py)",
    "hiredis": "Redis client (redis-py)",
    "pydantic": "pydantic validation",
    "pydantic_core": "pydantic validation",
    "orjson": "JSON",
    "json": "JSON",
    "prometheus_client": "Prometheus client",
    "aiokafka": "Kafka client (aiokafka)",
    "kafka": "Kafka client (aiokafka)",
    "faust": "Faust / mode",
    "mode": "Faust / mode",
}
#: Our top-level packages (``hanzo/ml/<package>`` links to them, so a path may show either form).
OUR_PACKAGES = ("features", "learners", "streams", "schemas", "monitor", "registry", "config")

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def part_of(frames: list[str]) -> str:
    """The part a stack belongs to (frames root first, as py-spy's raw format gives them).

    py-spy names a file by its path below ``sys.path`` (``redis/client.py``, ``ml/features/store.py``
    for ``hanzo/ml/features/store.py``), so the first folder names the library or our package.

    Examples
    --------
    >>> part_of(["run (ml/streams/app.py:3)", "apply (ml/features/redis_store.py:9)",
    ...          "execute (redis/client.py:1)"])
    'Redis client (redis-py)'
    >>> part_of(["run (ml/streams/app.py:3)", "learn (ml/learners/online.py:9)",
    ...          "learn_one (river/linear_model/log_reg.py:1)"])
    'learners/online.py'
    >>> part_of(["_run_once (asyncio/base_events.py:1)"])
    'asyncio event loop'
    """
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        path = (m.group("file") if m else frame).replace("\\", "/")
        parts = path.split("/")
        if "site-packages" in parts:
            parts = parts[parts.index("site-packages") + 1 :]
        if parts[0] in ("ml", "hanzo"):
            parts = parts[1:] if parts[0] == "ml" else parts[2:]
        top = parts[0].removesuffix(".py") if parts else ""
        if top in LIBRARY_PARTS:
            return LIBRARY_PARTS[top]
        if top in OUR_PACKAGES and len(parts) > 1:
            return "/".join(parts)
    if any(f.split("(", 1)[-1].startswith("asyncio/") for f in frames):
        return "asyncio event loop"
    return "other (interpreter, threads)"


def parse_raw(text: str) -> Counter[str]:
    """Samples per part from py-spy's ``--format raw`` output (``frame;frame;... count`` per line)."""
    parts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        parts[part_of(frames)] += int(count)
    return parts


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, every thread (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _wait_for_orders(worker: BenchWorker, n: float, timeout_s: float = 300.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not worker.alive:
            msg = f"the worker exited; see {worker.log_path}:\n{worker.log_tail()}"
            raise RuntimeError(msg)
        done = worker.orders_done(TOPICS["orders"])
        if done >= n:
            return done
        time.sleep(0.1)
    msg = f"the worker did not process {n:.0f} orders in {timeout_s:.0f} s; see {worker.log_path}"
    raise RuntimeError(msg)


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        msg = "py-spy is not installed; `make .venv/.installed-stamp` installs it with the dev extras"
        raise RuntimeError(msg)
    return found


def _start_workers(role: str, learner: bool, stack: Prefilled, workdir: Path) -> list[BenchWorker]:
    """The worker sampled (first) and, with ``learner``, a ``role: learn`` worker beside a scorer."""
    if role == "all":
        return start_group(1, stack.bootstrap, stack.redis_url, TOPICS, "p1:", workdir / "p1")
    env = worker_env(
        stack.bootstrap,
        stack.redis_url,
        TOPICS,
        "p1:",
        workdir / "p1" / "registry",
        workdir / "p1" / "state",
        HANZO_LOG_LEVEL="INFO",
    )
    workers = [BenchWorker({**env, "HANZO_ROLE": "score"}, workdir / "p1", name="scorer")]
    if learner:
        workers.append(BenchWorker({**env, "HANZO_ROLE": "learn"}, workdir / "p1", name="learner"))
    for w in workers:
        w.start()
    return workers


def measure(
    n_orders: int,
    seconds: float,
    warmup_orders: int,
    workdir: Path,
    role: str = "all",
    learner: bool = False,
) -> dict[str, Any]:
    """Prefill, start the worker of ``role``, sample it for ``seconds`` once warm; return the section.

    ``role="score"`` samples a scoring worker (``HANZO_ROLE=score``: it never learns); with ``learner`` a
    ``role: learn`` worker learns the labels beside it (its CPU is reported apart, and Redis's figures
    then include the learner's commands). The broker's CPU per order is measured too (Tansu's process).
    """
    spy = _py_spy()
    group: list[BenchWorker] = []
    with prefilled(n_orders, workdir) as stack:
        client = stack.client
        try:
            group = _start_workers(role, learner, stack, workdir)
            worker = group[0]
            assert worker.proc is not None
            _wait_for_orders(worker, warmup_orders)
            console.print(f"warm; sampling the {role} worker for {seconds:.0f} s ...")
            client.config_resetstat()
            before = worker.metrics()
            pids = [w.proc.pid for w in group if w.proc is not None]
            cpu0 = [_cpu_seconds(pid) for pid in pids]
            rcpu0, bcpu0 = _redis_cpu(client), _cpu_seconds(stack.broker_pid)
            raw = workdir / "py-spy.txt"
            record = ["record", "--pid", str(worker.proc.pid), "--duration", str(int(seconds))]
            record += ["--rate", "200", "--format", "raw", "--output", str(raw), "--nonblocking", "--gil"]
            # py-spy from our venv, on our own child process
            subprocess.run([spy, *record], check=True, capture_output=True, timeout=seconds + 60)  # noqa: S603
            cpu1 = [_cpu_seconds(pid) for pid in pids]
            rcpu1, bcpu1 = _redis_cpu(client), _cpu_seconds(stack.broker_pid)
            after = worker.metrics()
            learned = group[-1].metrics().get("hanzo_labels_learned_total", 0.0) if learner else 0.0
            stats = client.info("commandstats")
        finally:
            stop_group(group)
    key = f"hanzo_events_processed_total|topic={TOPICS['orders']}"
    orders = after.get(key, 0.0) - before.get(key, 0.0)
    labels = after.get("hanzo_labels_learned_total", 0.0) - before.get("hanzo_labels_learned_total", 0.0)
    batch_key = "hanzo_processing_latency_seconds_count|stage=order_batch"
    batches = after.get(batch_key, 0.0) - before.get(batch_key, 0.0)
    if orders <= 0:
        msg = "no order was processed while sampling"
        raise RuntimeError(msg)
    samples = parse_raw(raw.read_text())
    total = sum(samples.values()) or 1
    cpu_us = (cpu1[0] - cpu0[0]) * 1e6 / orders
    by_part = {p: round(cpu_us * n / total, 1) for p, n in samples.most_common()}
    by_command = {
        name.removeprefix("cmdstat_"): round(int(v["usec"]) / orders, 1)
        for name, v in sorted(stats.items(), key=lambda kv: -int(kv[1]["usec"]))
        if int(v["usec"]) / orders >= 0.1
    }
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    section: dict[str, Any] = {
        "role": role,
        "orders": int(orders),
        "labels_learned": int(labels),
        "seconds": seconds,
        "orders_per_s": round(orders / seconds, 1),
        "drained_during_window": after.get(key, 0.0) >= n_orders,
        "orders_per_batch": round(orders / batches, 1) if batches else None,
        "worker_cpu_us_per_order": round(cpu_us, 1),
        "worker_cpu_us_per_order_by_part": by_part,
        "py_spy_samples": total,
        "redis_us_per_order": round((rcpu1 - rcpu0) * 1e6 / orders, 1),
        "redis_us_per_order_by_command": by_command,
        "redis_commands_per_order": round(sum(calls.values()) / orders, 3),
        "redis_calls_per_order_by_command": {
            n: round(c / orders, 3) for n, c in sorted(calls.items(), key=lambda kv: -kv[1])
        },
        "broker_cpu_us_per_order": round((bcpu1 - bcpu0) * 1e6 / orders, 1),
    }
    if learner:
        section["learner_cpu_us_per_order"] = round((cpu1[-1] - cpu0[-1]) * 1e6 / orders, 1)
        section["learner_labels_learned_total"] = int(learned)
    return section


def _print(section: dict[str, Any]) -> None:
    head = (
        f"profile ({section['role']} worker): {section['orders']:,} orders in {section['seconds']:.0f} s "
        f"({section['orders_per_s']:,.0f}/s), {section['labels_learned']:,} labels learned"
    )
    table = Table(title=head)
    table.add_column("worker CPU, part")
    table.add_column("us/order", justify="right")
    for part, us in section["worker_cpu_us_per_order_by_part"].items():
        table.add_row(part, f"{us:,.1f}")
    table.add_row("[b]total[/b]", f"[b]{section['worker_cpu_us_per_order']:,.1f}[/b]")
    console.print(table)
    redis_table = Table(title="Redis per order (by command: wall time, script calls inside evalsha)")
    redis_table.add_column("command")
    redis_table.add_column("us/order", justify="right")
    for command, us in section["redis_us_per_order_by_command"].items():
        redis_table.add_row(command, f"{us:,.1f}")
    redis_table.add_row(
        "[b]server CPU (network included)[/b]", f"[b]{section['redis_us_per_order']:,.1f}[/b]"
    )
    console.print(redis_table)
    line = (
        f"orders per batch: {section['orders_per_batch']}; "
        f"Redis commands per order: {section['redis_commands_per_order']:.2f}; "
        f"broker CPU per order: {section['broker_cpu_us_per_order']:,.1f} us"
    )
    if "learner_cpu_us_per_order" in section:
        line += f"; learner CPU per order: {section['learner_cpu_us_per_order']:,.1f} us"
    console.print(line)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run, write section ``profile`` of bench/results.json, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=60_000, help="orders prefilled (enough for the window)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long py-spy samples the worker")
    parser.add_argument("--warmup-orders", type=int, default=3_000, help="orders processed before sampling")
    parser.add_argument(
        "--role",
        choices=("all", "score"),
        default="all",
        help="all: one worker scoring and learning; score: a scoring worker (role score), written to "
        "section profile_score",
    )
    parser.add_argument(
        "--learner", action="store_true", help="with --role score: a role-learn worker learns beside it"
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    section = measure(args.orders, args.seconds, args.warmup_orders, workdir, args.role, args.learner)
    section["machine"] = machine()
    write_section("profile" if args.role == "all" else "profile_score", section)
    _print(section)
    if section["drained_during_window"]:
        console.print("[yellow]the stream ran dry while sampling: give more --orders[/yellow]")
    return section


if __name__ == "__main__":
    main()
