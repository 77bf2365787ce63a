"""Stress: the test suite run several times in a row while CPU hogs keep every core busy.

Run with ``make test-stress`` (ruff, mypy and promtool first, as ``make test``; then the suite 3 times) or
alone with ``.venv/bin/python -m bench.stress [--runs N] [--hogs N] [-- PYTEST ARGS]``. A flake that needs
a loaded machine to show (a wait for a fixed time instead of a condition) fails here rather than on a
colleague's machine. The full suite takes ~15 minutes a run on two busy cores, so the default ~45.

It starts ``--hogs`` processes (``python -c "while True: pass"``, 2 by default: both cores of the reference
machine), runs ``python -m pytest -q`` (or the given selection) ``--runs`` times one after the other, and
stops the hogs by pid however the runs end. Each run's output goes to the terminal and to
``.hanzo/stress/run-N.log``. It prints a table (result, seconds, pytest's summary line, failing test ids)
and writes section ``stress`` of ``bench/results.json`` (``stress-selection`` when a selection was given,
so a partial run does not replace the full one); it exits 1 when any run failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".hanzo" / "stress"
HOG = "while True: pass"
#: pytest's short summary names each failure (``FAILED id - message``) and error (``ERROR id``)
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")
_SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|errors?|skipped|deselected).*) in [\d.]+s")
console = Console()


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that each keep one core busy."""
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]  # noqa: S603


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    """Kill each hog by its pid and reap it."""
    for proc in hogs:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
        proc.wait(10)


def run_once(number: int, pytest_args: list[str]) -> dict[str, Any]:
    """One pytest run: its output to the terminal and to a log; returns the figures of the run."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"run-{number}.log"
    argv = [sys.executable, "-m", "pytest", "-q", *pytest_args]
    console.rule(f"stress run {number}: {' '.join(argv[1:])}")
    failed: list[str] = []
    summary = ""
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            m = _FAILED.match(line)
            if m:
                failed.append(m.group(2))
            s = _SUMMARY.match(line.strip())
            if s:
                summary = s.group(1)
        code = proc.wait()
    return {
        "run": number,
        "ok": code == 0,
        "exit_code": code,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "failed": failed,
        "log": str(log_path.relative_to(ROOT)),
    }


def _print(section: dict[str, Any]) -> None:
    verdict = "OK" if section["runs_failed"] == 0 else "FAILED"
    title = f"stress: {len(section['runs'])} runs with {section['hogs']} CPU hogs ({verdict})"
    table = Table(title=title)
    for col in ("run", "result", "seconds", "pytest", "failing tests"):
        table.add_column(col, overflow="fold")
    for r in section["runs"]:
        result = "passed" if r["ok"] else f"FAILED (exit {r['exit_code']})"
        failing = "\n".join(r["failed"]) or "-"
        table.add_row(str(r["run"]), result, f"{r['seconds']:.0f}", r["summary"], failing)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the suite ``--runs`` times under ``--hogs`` CPU hogs; 1 when any run failed."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="how many times the suite runs (default 3)")
    p.add_argument("--hogs", type=int, default=2, help="busy processes started meanwhile (default 2)")
    p.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: the whole suite)")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    hogs = start_hogs(args.hogs)
    try:
        for number in range(1, args.runs + 1):
            runs.append(run_once(number, args.pytest_args))
    finally:
        stop_hogs(hogs)
    section: dict[str, Any] = {
        "runs": runs,
        "runs_failed": sum(not r["ok"] for r in runs),
        "hogs": args.hogs,
        "pytest_args": args.pytest_args,
        "failing_tests": dict(Counter(t for r in runs for t in r["failed"]).most_common()),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_section("stress-selection" if args.pytest_args else "stress", section)
    _print(section)
    return 1 if section["runs_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
