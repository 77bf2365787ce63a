"""``hanzo-ml up | down | status``: the embedded Tansu broker and redis-server."""

from __future__ import annotations

import asyncio

import click
from rich.console import Console
from rich.table import Table

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.cli.base import err_console, pass_settings
from hanzo.ml.streams.embedded import StackState, down, is_running, state_path, up
from hanzo.ml.streams.security import kafka_client_kwargs, security_from
from hanzo.ml.streams.topics import ensure_topics, topic_map


def stack_table(state: StackState, title: str) -> Table:
    """One row per service: address, pid, whether this stack started it and whether it runs."""
    table = Table(title=title)
    for column in ("service", "address", "pid", "origin", "running"):
        table.add_column(column)
    for svc in (state.kafka, state.redis):
        origin = "reused" if state.reused and svc.started else "started" if svc.started else "existing"
        running = ("yes" if is_running(svc) else "no") if svc.started else "external"
        table.add_row(svc.name, svc.address, str(svc.pid or "-"), origin, running)
    return table


def _log_lines(state: StackState) -> list[str]:
    return [f"{s.name} log: {s.log_path}" for s in (state.kafka, state.redis) if s.log_path]


@click.command("up")
@click.option("--no-topics", is_flag=True, help="do not create the configured topics")
@pass_settings
def up_command(settings: Settings, no_topics: bool) -> int:
    """Start the embedded Kafka broker (Tansu) and redis-server."""
    state = up(settings)
    if state.kafka.started and not no_topics:
        topics = dict.fromkeys(topic_map(settings).values(), settings.partitions)
        client_kwargs = kafka_client_kwargs(security_from(settings))
        asyncio.run(ensure_topics(state.kafka.address, topics, client_kwargs=client_kwargs))
    err_console.print(stack_table(state, "hanzo-ml stack (reused)" if state.reused else "hanzo-ml stack"))
    for line in [f"note: {n}" for n in state.notes] + _log_lines(state):
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    Console().print(
        f"export HANZO_KAFKA_BOOTSTRAP={state.kafka.address} HANZO_REDIS_URL={state.redis.address}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0


@click.command("down")
@pass_settings
def down_command(settings: Settings) -> int:
    """Stop what `up` started."""
    stopped = down(settings)
    for line in stopped:
        err_console.print(f"stopped {line}", markup=False)
    if not stopped:
        err_console.print(
            f"nothing to stop (no running stack recorded in {state_path(settings)})", markup=False
        )
    return 0


@click.command("status", short_help="Show the recorded stack and whether it runs.")
@pass_settings
def status_command(settings: Settings) -> int:
    """Show the recorded stack and whether it runs (exit 1 when a started service is gone)."""
    state = StackState.read(state_path(settings))
    if state is None:
        err_console.print(f"no stack recorded in {state_path(settings)}; run `hanzo-ml up`", markup=False)
        return 1
    err_console.print(stack_table(state, f"hanzo-ml stack ({state_path(settings)})"))
    for line in _log_lines(state):
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0 if all(is_running(s) for s in (state.kafka, state.redis) if s.started) else 1
