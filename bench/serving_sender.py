"""Open-loop HTTP load: POST requests on a fixed timetable; latency counted from the scheduled send time.

Run by ``bench.serving`` as its own process, so the sender and the server under test share no event loop::

    python -m bench.serving_sender --url http://127.0.0.1:6070/predict/fraud_detection \
        --ids-file ids.txt --rate 500 --duration 10

Request ``i`` is due at ``t0 + i / rate`` whatever happened to the earlier ones (open loop): a slow server
makes requests queue, and the queueing is in the figures. The sender sleeps until a request is due (its
loop wakes up to a millisecond late: asyncio's timers have millisecond resolution) and does not spin,
so it leaves the CPU to the server under test on a small machine; latency counts from the due time, so
the sender's own lateness is in the figures too, and is reported apart (``send_lag_p50_ms`` /
``send_lag_p99_ms``) with the share of a core the sender used (``sender_cpu_share``).

It speaks just enough HTTP/1.1 itself (keep-alive connections, ``Content-Length`` bodies) to cost a small
fraction of a general client per request: a request goes on an idle connection, or on a new one when
every open connection is waiting for an answer (``connections_opened`` counts those beyond the
warm-up's). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import latency_ms


class _Connection(asyncio.Protocol):
    """One keep-alive connection answering one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[0].split()[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class _Client:
    """A pool of keep-alive connections to one server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[_Connection] = []
        self.all: list[_Connection] = []
        self.opened = 0

    async def post(self, body: bytes) -> tuple[int, bytes]:
        while self.idle and self.idle[-1].closed:
            self.idle.pop()
        if self.idle:
            conn = self.idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
            self.opened += 1
            self.all.append(conn)
        result = await conn.request(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.idle.append(conn)
        return result

    def close(self) -> None:
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()


async def run(
    url: str, bodies: list[bytes], rate: float, duration: float, warmup: int = 100
) -> dict[str, object]:
    """Send ``rate * duration`` requests on the timetable; return the latency summary."""
    n = int(rate * duration)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    from_due: list[float] = []
    from_send: list[float] = []
    lags: list[float] = []
    samples: list[str] = []
    client = _Client(url)
    cached = [0]
    loop = asyncio.get_running_loop()
    try:
        for i in range(warmup):  # connections, server caches, first-call costs
            await client.post(bodies[-1 - i % len(bodies)])  # from the end: the timed run starts at 0
        opened_warm = client.opened

        async def one(i: int, due: float) -> None:
            sent = loop.time()
            lags.append(sent - due)
            try:
                status, body = await client.post(bodies[i % len(bodies)])
                statuses[str(status)] += 1
                cached[0] += b'"cached":true' in body
                if status != 200 and not samples:
                    samples.append(body.decode(errors="replace")[:500])
            except (TimeoutError, OSError, ValueError, IndexError) as exc:
                errors[type(exc).__name__] += 1
            done = loop.time()
            from_due.append(done - due)
            from_send.append(done - sent)

        tasks = []
        cpu0 = time.process_time()
        t0 = loop.time() + 0.05
        started = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            left = due - loop.time()
            if left > 0:
                await asyncio.sleep(left)  # no spinning: the CPU is the server's; lateness is counted
            tasks.append(loop.create_task(one(i, due)))
        send_phase = time.perf_counter() - started
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        client.close()
    return {
        "rate": rate,
        "duration_s": duration,
        "sent": n,
        "offered_rps": round(n / send_phase, 1),
        "completed_rps": round(n / elapsed, 1),
        "status": dict(statuses),
        "errors": dict(errors),
        "error_sample": samples[0] if samples else None,
        **latency_ms(from_due),
        **latency_ms(from_send, prefix="from_send_"),
        "send_lag_p50_ms": latency_ms(lags)["p50_ms"],
        "send_lag_p99_ms": latency_ms(lags)["p99_ms"],
        "sender_cpu_share": round(cpu / elapsed, 3),
        "connections_opened": client.opened - opened_warm,
        "cached_share": round(cached[0] / max(1, sum(statuses.values())), 4),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, send, print the summary as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--ids-file", required=True, help="entity ids, one a line")
    p.add_argument("--entity-key", default="customer_id")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    ids = Path(args.ids_file).read_text().split()
    warmup = 100
    # one distinct body per request (customer and order values), so the prediction cache hits only by chance
    bodies = [
        json.dumps(
            {
                args.entity_key: rng.choice(ids),
                "order_total": round(rng.uniform(5, 500), 2),
                "payment_method": rng.choice(["card", "paypal", "gift_card"]),
                "country_mismatch": float(rng.random() < 0.05),
                "account_age_days": rng.uniform(1, 900),
            }
        ).encode()
        for _ in range(int(args.rate * args.duration) + warmup)
    ]
    result = asyncio.run(run(args.url, bodies, args.rate, args.duration, warmup))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
