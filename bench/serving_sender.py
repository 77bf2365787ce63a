"""Open-loop HTTP load: POST requests on a fixed timetable; latency counted from the scheduled send time.

Run by ``bench.serving`` as its own process, so the sender and the server under test share no event loop::

    python -m bench.serving_sender --url http://127.0.0.1:6070/predict/fraud_detection \
        --ids-file ids.txt --rate 500 --duration 10

Request ``i`` is due at ``t0 + i / rate`` whatever happened to the earlier ones (open loop): a slow server
makes requests queue, and the queueing is in the figures. The sender sleeps until about a millisecond
before a request is due and then yields to its loop until it is, so its own timer slack stays small; the
lag between the due time and the actual send is reported apart (``send_lag_p99_ms``). Prints one JSON
object on stdout.
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

import aiohttp

from bench.common import latency_ms


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
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(warmup):  # connections, server caches, first-call costs
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                await r.read()
        loop = asyncio.get_running_loop()

        async def one(i: int, due: float) -> None:
            sent = loop.time()
            lags.append(sent - due)
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    body = await r.read()
                    statuses[str(r.status)] += 1
                    if r.status != 200 and not samples:
                        samples.append(body.decode(errors="replace")[:500])
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                errors[type(exc).__name__] += 1
            done = loop.time()
            from_due.append(done - due)
            from_send.append(done - sent)

        tasks = []
        t0 = loop.time() + 0.05
        started = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            while True:
                left = due - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(left - 0.0012 if left > 0.0015 else 0)
            tasks.append(loop.create_task(one(i, due)))
        send_phase = time.perf_counter() - started
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
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
        "send_lag_p99_ms": latency_ms(lags)["p99_ms"],
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
        for _ in range(2000)
    ]
    result = asyncio.run(run(args.url, bodies, args.rate, args.duration))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
