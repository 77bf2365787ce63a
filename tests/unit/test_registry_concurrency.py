"""Concurrent writers (processes and threads) produce distinct, complete versions and a sane alias log."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hanzo.ml.registry import Registry
from hanzo.ml.registry.storage import TEMP_PREFIX

PER_WRITER = 12
KEY = b"concurrency-key"


def _writer(root: str, tag: str, start: Any) -> list[str]:
    start.wait(30)  # a barrier: every writer starts registering at the same moment
    reg = Registry(Path(root), hmac_key=KEY, keep_last=None)
    versions = []
    for i in range(PER_WRITER):
        mv = reg.register(
            {"writer": tag, "i": i, "payload": os.urandom(20_000)}, "m", metadata={"writer": tag, "i": i}
        )
        versions.append(mv.version)
        time.sleep(0.02)  # a learner works between snapshots; lets the writers interleave
        if i % 4 == 0:
            reg.promote("m", mv.version, reason=f"{tag}-{i}")
    return versions


def _process_entry(root: str, tag: str, start: Any, out: Any) -> None:
    out.put(_writer(root, tag, start))


def _check(root: Path, handed: list[str], writers: int) -> None:
    assert len(handed) == len(set(handed)) == writers * PER_WRITER
    reg = Registry(root, hmac_key=KEY)
    listed = [mv.version for mv in reg.list_versions("m")]
    assert sorted(listed) == sorted(handed)
    assert listed == [f"0.0.0+snap.{n:06d}" for n in range(1, writers * PER_WRITER + 1)]
    for version in listed:
        model, mv = reg.load_version("m", version)
        assert model["writer"] == mv.metadata["writer"] and model["i"] == mv.metadata["i"]
    events = reg.history("m")
    assert len(events) == writers * ((PER_WRITER + 3) // 4)
    assert reg.aliases("m")["production"] == events[-1].to_version
    assert [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)] == []
    # The writers really overlapped in time (otherwise this test would prove nothing).
    writers_in_order = [reg.show("m", v).metadata["writer"] for v in listed]
    switches = sum(a != b for a, b in zip(writers_in_order, writers_in_order[1:], strict=False))
    assert switches >= writers, writers_in_order


def test_two_processes_register_concurrently(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    out: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_process_entry, args=(str(tmp_path), tag, start, out)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    _check(tmp_path, [v for r in results for v in r], writers=2)


def test_threads_register_concurrently(tmp_path: Path) -> None:
    start = threading.Barrier(4)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda tag: _writer(str(tmp_path), tag, start), "wxyz"))
    _check(tmp_path, [v for r in results for v in r], writers=4)
