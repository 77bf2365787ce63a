"""``hanzo-ml registry ...``: list, show, promote, rollback, history and diff of registered models.

The registry folder is ``settings.registry_path`` and the HMAC key ``settings.registry_hmac_key``.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hanzo.ml.config.errors import IntegrityError
from hanzo.ml.config.settings import Settings
from hanzo.ml.registry.registry import Registry

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


def _list(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    console = Console()
    if args.name is None:
        table = Table(title=f"models in {settings.registry_path}")
        for column in ("model", "versions", "latest", "aliases"):
            table.add_column(column)
        for name in registry.list_models():
            versions = registry.list_versions(name)
            aliases = ", ".join(f"{a}={v}" for a, v in sorted(registry.aliases(name).items()))
            table.add_row(_text(name), str(len(versions)), _text(versions[-1].version), _text(aliases or "-"))
        console.print(table)
        return 0
    table = Table(title=f"versions of {args.name} (oldest first)")
    for column in ("version", "created (UTC)", "size", "sha256", "aliases", "signed"):
        table.add_column(column, no_wrap=column in ("version", "created (UTC)"))
    for mv in registry.list_versions(args.name):
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


def _show(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    console = Console()
    mv = registry.show(args.name, args.version)
    try:
        registry.verify(args.name, mv.version)
        integrity, status = "[green]ok[/green]", 0
    except IntegrityError as exc:
        integrity, status = f"[red]FAILED: {escape(str(exc))}[/red]", 1
    table = Table(title=f"{args.name} {mv.version}", show_header=False)
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


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    mv = open_registry(settings).promote(args.name, args.version, alias=args.alias, reason=args.reason)
    Console().print(f"{escape(args.name)}: {escape(args.alias)} -> {escape(mv.version)}")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    mv = open_registry(settings).rollback(args.name, alias=args.alias, reason=args.reason)
    Console().print(f"{escape(args.name)}: {escape(args.alias)} rolled back to {escape(mv.version)}")
    return 0


def _history(args: argparse.Namespace, settings: Settings) -> int:
    table = Table(title=f"alias history of {args.name}")
    for column in ("time (UTC)", "alias", "action", "from", "to", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for event in open_registry(settings).history(args.name):
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


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    result = open_registry(settings).diff(args.name, args.v1, args.v2)
    table = Table(title=f"{args.name}: {result['from']} -> {result['to']}")
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


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``registry list|show|promote|rollback|history|diff`` to the ``hanzo-ml`` parser."""
    parser = sub.add_parser("registry", help="versioned models: list, show, promote, rollback, history, diff")
    verbs = parser.add_subparsers(dest="registry_command", metavar="VERB", required=True)

    p = verbs.add_parser("list", help="list models, or the versions of one model")
    p.add_argument("name", nargs="?", help="model name (omit to list models)")
    p.set_defaults(func=_list)

    p = verbs.add_parser("show", help="describe one version and check its integrity")
    p.add_argument("name")
    p.add_argument("version", help="version, alias (e.g. production) or 'latest'")
    p.set_defaults(func=_show)

    p = verbs.add_parser("promote", help="point an alias (default production) at a version")
    p.add_argument("name")
    p.add_argument("version", help="version, alias or 'latest'")
    p.add_argument("--alias", default="production")
    p.add_argument("--reason", default="", help="why (kept in the alias history)")
    p.set_defaults(func=_promote)

    p = verbs.add_parser("rollback", help="move an alias back to the version that held it before")
    p.add_argument("name")
    p.add_argument("--alias", default="production")
    p.add_argument("--reason", default="", help="why (kept in the alias history)")
    p.set_defaults(func=_rollback)

    p = verbs.add_parser("history", help="alias history: promotions, rollbacks, gate rejections")
    p.add_argument("name")
    p.set_defaults(func=_history)

    p = verbs.add_parser("diff", help="metadata differences between two versions")
    p.add_argument("name")
    p.add_argument("v1")
    p.add_argument("v2")
    p.set_defaults(func=_diff)
