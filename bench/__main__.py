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

ORDER = ("features", "learners", "serving", "e2e", "quality", "drift", "chaos")
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
        shown = {k: v for k, v in values.items() if k not in ("machine", "when") and not isinstance(v, dict)}
        table.add_row(section, ", ".join(f"{k}={v}" for k, v in shown.items()))
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
