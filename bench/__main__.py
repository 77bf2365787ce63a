"""``make bench``: run every benchmark present, print a summary and keep bench/results.json.

Each benchmark is a module with ``main(argv) -> dict`` that writes its own section; a benchmark that fails is
reported and the others still run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import traceback

from rich.console import Console
from rich.table import Table

from bench.results import RESULTS

ORDER = ("features", "decode", "learners", "serving", "e2e", "profile", "quality", "drift", "chaos")
#: figures kept in a nested object of a section that the summary shows too (section -> object -> keys)
NESTED = {
    "e2e": {
        "memory_run": (
            "orders",
            "rss_mb_start",
            "rss_mb_after_warmup",
            "rss_mb_end",
            "rss_mb_max",
            "rss_mb_per_100k_orders_second_half",
        )
    }
}
console = Console()


def main() -> int:
    failed = []
    for name in ORDER:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                console.print(f"[yellow]bench.{name}: not written yet[/yellow]")
                continue
            raise
        console.rule(f"bench.{name}")
        try:
            params = inspect.signature(module.main).parameters
            module.main([]) if params else module.main()
        except Exception:
            failed.append(name)
            console.print(f"[red]bench.{name} failed[/red]\n{traceback.format_exc()}")
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    table = Table(title=f"summary ({RESULTS})")
    table.add_column("section")
    table.add_column("figures")
    for section, values in data.items():
        shown = {
            k: v for k, v in values.items() if k not in ("machine", "when") and not isinstance(v, dict | list)
        }
        for name, keys in NESTED.get(section, {}).items():
            nested = values.get(name)
            if isinstance(nested, dict):
                shown |= {f"{name}.{k}": nested[k] for k in keys if k in nested}
        table.add_row(section, ", ".join(f"{k}={v}" for k, v in shown.items()))
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
