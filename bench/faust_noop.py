"""A no-op Faust agent on the orders topic: the ceiling of Faust's per-event machinery on this machine.

Run by ``bench.e2e`` as a subprocess; writes ``{"events", "seconds"}`` (first event to last) to a JSON file.
Settings come from environment variables set by the parent: BENCH_BOOTSTRAP, BENCH_TOPIC, BENCH_N, BENCH_OUT,
BENCH_WEB_PORT.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust


def main() -> None:
    env = os.environ
    n = int(env["BENCH_N"])
    out = Path(env["BENCH_OUT"])
    app = faust.App(
        f"bench-noop-{os.getpid()}",
        broker=f"kafka://{env['BENCH_BOOTSTRAP']}",
        broker_session_timeout=6,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=int(env["BENCH_WEB_PORT"]),
        store="memory://",
        consumer_auto_offset_reset="earliest",
        value_serializer="raw",
    )
    topic = app.topic(env["BENCH_TOPIC"], value_serializer="raw", key_serializer="raw")
    state = {"count": 0, "first": 0.0}

    @app.agent(topic)
    async def noop(stream: faust.Stream) -> None:
        async for _ in stream:
            if state["count"] == 0:
                state["first"] = time.perf_counter()
            state["count"] += 1
            if state["count"] == n:
                seconds = time.perf_counter() - state["first"]
                out.write_text(json.dumps({"events": n, "seconds": seconds}))

    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
