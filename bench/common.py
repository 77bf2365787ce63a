"""Helpers shared by the benchmarks: latency summaries (the results file is :mod:`bench.results`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table


def latency_ms(seconds: Sequence[float], prefix: str = "") -> dict[str, float]:
    """p50, p99 and max of latencies given in seconds, in milliseconds (keys ``<prefix>p50_ms``...).

    Examples
    --------
    >>> latency_ms([0.001] * 99 + [0.01], prefix="x_")
    {'x_p50_ms': 1.0, 'x_p99_ms': 1.09, 'x_max_ms': 10.0}
    """
    if not seconds:
        return {f"{prefix}{k}_ms": float("nan") for k in ("p50", "p99", "max")}
    a = np.asarray(seconds, dtype=float) * 1000
    return {
        f"{prefix}p50_ms": round(float(np.percentile(a, 50)), 4),
        f"{prefix}p99_ms": round(float(np.percentile(a, 99)), 4),
        f"{prefix}max_ms": round(float(a.max()), 4),
    }


def print_figures(console: Console, title: str, section: Mapping[str, object]) -> None:
    """Print a section's figures (all but ``machine``) as a two-column table."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in section.items():
        if k != "machine":
            table.add_row(k, f"{v:,}" if isinstance(v, int | float) else str(v))
    console.print(table)
