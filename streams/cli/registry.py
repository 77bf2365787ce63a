"""``hanzo-ml registry list | show | promote | rollback | history | diff`` of registered models.

The registry folder is ``settings.registry_path`` and the HMAC key ``settings.registry_hmac_key``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hanzo.ml.config.errors import IntegrityError
from hanzo.ml.config.settings import Settings
from hanzo.ml.registry.registry import Registry
from hanzo.ml.streams.cli.base import pass_settings

logger = logging.getLogger(__name__)


def open_registry(settings: Settings) -> Registry:
    """Build the registry the settings describe (folder and optional HMAC key)."""
    key = settings.registry_hmac_key
    return Registry(settings.registry_path, hmac_key=key.get_secret_value().encode() if key else None)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, sort_keys=True))
    return escape(str(value))


ALIAS = click.option("--alias", default="production", show_default=True, help="the alias to move")
REASON = click.option("--reason", default="", help="why (kept in the alias history)")


@click.group("registry")
def registry_group() -> None:
    """Versioned models: list, show, promote, rollback, history, diff."""


@registry_group.command("list")
@click.argument("name", required=False)
@pass_settings
def list_command(settings: Settings, name: str | None) -> int:
    """List models, or the versions of model NAME (oldest first)."""
    registry = open_registry(settings)
    console = Console()
    if name is None:
        table = Table(title=f"models in {settings.registry_path}")
        for column in ("model", "versions", "latest", "aliases"):
            table.add_column(column)
        for model in registry.list_models():
            versions = registry.list_versions(model)
            aliases = ", ".join(f"{a}={v}" for a, v in sorted(registry.aliases(model).items()))
            table.add_row(
                _text(model), str(len(versions)), _text(versions[-1].version), _text(aliases or "-")
            )
        console.print(table)
        return 0
    table = Table(title=f"versions of {name} (oldest first)")
    for column in ("version", "created (UTC)", "size", "sha256", "aliases", "signed"):
        table.add_column(column, no_wrap=column in ("version", "created (UTC)"))
    for mv in registry.list_versions(name):
        table.add_row(
            _text(mv.version),
            mv.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{mv.size:,}",
            mv.sha256[:12],
            _text(", ".join(mv.aliases) or "-"),
            "yes" if mv.signed else "no",
        )
    console.print(table)
    return 0


@registry_group.command("show")
@click.argument("name")
@click.argument("version")
@pass_settings
def show_command(settings: Settings, name: str, version: str) -> int:
    """Describe one VERSION (a version, an alias such as production, or 'latest') and check its integrity.

    Exits 1 when the artifact fails its SHA-256 or signature check.
    """
    registry = open_registry(settings)
    console = Console()
    mv = registry.show(name, version)
    try:
        registry.verify(name, mv.version)
        integrity, status = "[green]ok[/green]", 0
    except IntegrityError as exc:
        integrity, status = f"[red]FAILED: {escape(str(exc))}[/red]", 1
    table = Table(title=f"{name} {mv.version}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("version", _text(mv.version)),
        ("created (UTC)", mv.created_at.isoformat()),
        ("size", f"{mv.size:,} bytes"),
        ("sha256", mv.sha256),
        ("aliases", _text(", ".join(mv.aliases) or "-")),
        ("signed", "yes" if mv.signed else "no"),
        ("integrity", integrity),
    ]
    rows += [(f"metadata.{k}", _text(v)) for k, v in sorted(mv.metadata.items())]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)
    return status


@registry_group.command("promote")
@click.argument("name")
@click.argument("version")
@ALIAS
@REASON
@pass_settings
def promote_command(settings: Settings, name: str, version: str, alias: str, reason: str) -> int:
    """Point an alias (default production) at VERSION (a version, an alias or 'latest')."""
    mv = open_registry(settings).promote(name, version, alias=alias, reason=reason)
    Console().print(f"{escape(name)}: {escape(alias)} -> {escape(mv.version)}")
    return 0


@registry_group.command("rollback")
@click.argument("name")
@ALIAS
@REASON
@pass_settings
def rollback_command(settings: Settings, name: str, alias: str, reason: str) -> int:
    """Move an alias back to the version that held it before."""
    mv = open_registry(settings).rollback(name, alias=alias, reason=reason)
    Console().print(f"{escape(name)}: {escape(alias)} rolled back to {escape(mv.version)}")
    return 0


@registry_group.command("history")
@click.argument("name")
@pass_settings
def history_command(settings: Settings, name: str) -> int:
    """Alias history: promotions, rollbacks, gate rejections."""
    table = Table(title=f"alias history of {name}")
    for column in ("time (UTC)", "alias", "action", "from", "to", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for event in open_registry(settings).history(name):
        table.add_row(
            event.time.strftime("%Y-%m-%d %H:%M:%S"),
            _text(event.alias),
            _text(event.action),
            _text(event.from_version),
            _text(event.to_version),
            _text(event.reason),
        )
    Console().print(table)
    return 0


@registry_group.command("diff")
@click.argument("name")
@click.argument("v1")
@click.argument("v2")
@pass_settings
def diff_command(settings: Settings, name: str, v1: str, v2: str) -> int:
    """Metadata differences between two versions."""
    result = open_registry(settings).diff(name, v1, v2)
    table = Table(title=f"{name}: {result['from']} -> {result['to']}")
    for column in ("key", result["from"], result["to"]):
        table.add_column(_text(column))
    for key, (old, new) in result["changed"].items():
        table.add_row(_text(key), _text(old), _text(new))
    for key, new in result["added"].items():
        table.add_row(_text(key), "[dim](absent)[/dim]", _text(new))
    for key, old in result["removed"].items():
        table.add_row(_text(key), _text(old), "[dim](absent)[/dim]")
    Console().print(table)
    return 0
