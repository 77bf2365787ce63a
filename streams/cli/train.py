"""``hanzo-ml train SPEC --data history.jsonl``: bootstrap a model from history.

The replay itself is :mod:`~hanzo.ml.streams.train`.

Prints what the spec's model is (:func:`learners.factory.describe_model`), a progress bar while history
replays, the progressive (predict-then-learn) and holdout metrics, registers the version, and exits 1 naming
the metric and the threshold when one is missed. ``hanzo-ml worker --pipeline NAME`` then continues from the
registered version. Family pipelines (demand forecasting, recommendations, price optimization, search
ranking) print their baseline beside the metrics, and with ``--redis-url`` write their outputs
(``forecast:``, ``reco:``, ``price:``, ``rank:`` keys) to Redis.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hanzo.ml.config.settings import Settings
from hanzo.ml.learners.factory import describe_model
from hanzo.ml.learners.metrics import lower_is_better
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.streams.cli.base import pass_settings
from hanzo.ml.streams.runtime import resolve_spec_path
from hanzo.ml.streams.security import make_redis, security_from
from hanzo.ml.streams.train import TrainResult, load_history, train

logger = logging.getLogger(__name__)

console = Console()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def metrics_table(result: TrainResult) -> Table:
    """The metrics of a training run: progressive cumulative and rolling, holdout, threshold."""
    spec = result.spec
    table = Table(title=f"{spec.name} {result.version or spec.version}: metrics")
    table.add_column("metric")
    table.add_column("progressive (cumulative)", justify="right")
    table.add_column(f"progressive (last {spec.evaluation.rolling_window})", justify="right")
    table.add_column(f"holdout ({result.holdout_examples} examples)", justify="right")
    if result.baseline is not None:
        table.add_column("baseline", justify="right")
    table.add_column("threshold", justify="right")
    for name in spec.evaluation.metrics:
        threshold = spec.evaluation.threshold.get(name)
        shown = "-" if threshold is None else ("<= " if lower_is_better(name) else ">= ") + f"{threshold:g}"
        if name in result.missed:
            shown = f"[red]{shown} missed[/red]"
        row = [
            name,
            _fmt(result.progressive.get("cumulative", {}).get(name)),
            _fmt(result.progressive.get("rolling", {}).get(name)),
            _fmt(result.holdout.get(name) if result.holdout is not None else None),
        ]
        if result.baseline is not None:
            row.append(_fmt(result.baseline.get(name)))
        table.add_row(*row, shown)
    for name, value in (result.baseline or {}).items():
        if name not in spec.evaluation.metrics and result.report is not None:
            model_value = result.report.get(name)
            table.add_row(name, _fmt(model_value), "-", "-", _fmt(value), "-")
    return table


def run_train(
    spec_path: str,
    data: Path,
    registry_dir: Path,
    batch_size: int,
    hmac_key: bytes | None,
    redis_client: Any | None = None,
    key_prefix: str = "",
) -> int:
    """Train ``spec_path`` on ``data`` and register it; return the exit code (1: a threshold missed)."""
    spec = PipelineSpec.from_yaml(resolve_spec_path(spec_path))
    console.print(f"[bold]{spec.name} {spec.version}[/bold] (spec {spec.spec_hash[:12]})")
    console.print(describe_model(spec), highlight=False)
    events = load_history(data)
    registry = Registry(registry_dir, hmac_key=hmac_key)
    with Progress(
        TextColumn("replaying history"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("events", total=len(events))
        result = train(
            spec,
            events,
            registry=registry,
            batch_size=batch_size,
            progress=lambda n: progress.advance(task, n),
            source=str(data),
            redis_client=redis_client,
            key_prefix=key_prefix,
        )
    s = result.stats
    console.print(
        f"{s.events:,} events in {result.seconds:.1f}s ({s.events / max(result.seconds, 1e-9):,.0f}/s); "
        f"{result.learner.examples_learned:,} examples learned, {result.holdout_examples:,} held out; "
        f"{s.derived_labels:,} derived labels; {result.unmatched:,} labels without a vector; "
        f"{sum(s.expired.values()):,} vectors expired unlabelled"
    )
    console.print(metrics_table(result))
    if result.published is not None:
        console.print(f"wrote {result.published:,} {spec.scoring.output_key.split(':')[0]}: keys to Redis")
    console.print(f"registered [bold]{spec.name} {result.version}[/bold] in {registry_dir}")
    if not result.ok:
        for name, (value, threshold) in result.missed.items():
            relation = "above" if lower_is_better(name) else "below"
            console.print(
                f"[red]threshold missed:[/red] {name} = {value:.4f} on the {result.evaluated_on} "
                f"is {relation} evaluation.threshold.{name} = {threshold:g}"
            )
        return 1
    console.print(f"[green]every threshold met[/green] (on the {result.evaluated_on})")
    return 0


@click.command("train", short_help="Bootstrap a model from a history file and register it.")
@click.argument("spec", metavar="SPEC")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="history file (JSON lines, any event order)",
)
@click.option(
    "--registry",
    "registry_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="registry folder (default HANZO_REGISTRY_DIR)",
)
@click.option("--batch-size", type=int, default=2000, show_default=True, help="events per replayed batch")
@click.option(
    "--redis-url",
    default=None,
    help="family pipelines: write their outputs (forecast:/reco:/price:/rank: keys) to this Redis",
)
@pass_settings
def train_command(
    settings: Settings,
    spec: str,
    data: Path,
    registry_dir: Path | None,
    batch_size: int,
    redis_url: str | None,
) -> int:
    """Bootstrap a pipeline's model from a history file and register it.

    SPEC is a pipeline YAML file or a shipped pipeline name (e.g. churn_prediction). Exits 1 naming the
    metric and the threshold when one is missed.
    """
    key = settings.registry_hmac_key.get_secret_value().encode() if settings.registry_hmac_key else None
    client = None
    if redis_url:
        client = make_redis(redis_url, security_from(settings), socket_timeout=5, socket_connect_timeout=3)
    return run_train(
        spec,
        data,
        registry_dir or settings.registry_path,
        batch_size,
        key,
        redis_client=client,
        key_prefix=settings.key_prefix,
    )
