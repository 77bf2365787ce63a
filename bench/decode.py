"""Event decoding: the worker's pydantic parser against msgspec, on the same events in the same run.

Run alone with ``.venv/bin/python -m bench.decode``; writes section ``decode`` of ``bench/results.json``.

On the JSON bytes of simulated events (orders, customer events, labels, as the producer writes them), each
parsed with its topic's forced ``kind`` as the worker does:

- ``events_per_s``: ``schemas.events.parse_event``, the worker's decoder (pydantic's one-pass JSON
  validation, in Rust, models included);
- ``msgspec_events_per_s``: ``bench.msgspec_events.parse_event``: msgspec decodes and validates, the pydantic
  models are built directly (tested to give the same events and the same errors);
  ``msgspec_ratio_vs_pydantic`` = it over ``events_per_s``;
- ``msgspec_model_construct_events_per_s``: msgspec, then pydantic's public ``model_construct`` (slower
  than the direct construction above);
- ``msgspec_structs_events_per_s``: msgspec's decode into its Structs alone (no pydantic models, the id
  patterns not checked): the most a Struct-carrying hot path could get from msgspec;
- ``orders_*``: the same on the orders alone.

Medians over repeats; figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from bench import msgspec_events as fast_decode
from bench.common import print_figures
from bench.results import machine, write_section
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, OrderItem, parse_event, to_json
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig

console = Console()


def _construct(data: bytes, kind: str | None) -> Any:
    """msgspec's validation, then ``model_construct`` (public, slower) for the pydantic models."""
    s = fast_decode._ANY.decode(data)
    if isinstance(s, fast_decode._Order):
        items = [
            OrderItem.model_construct(**{f: getattr(i, f) for f in i.__struct_fields__}) for i in s.items
        ]
        values = {f: getattr(s, f) for f in s.__struct_fields__ if getattr(s, f) is not fast_decode.UNSET}
        return Order.model_construct(**{**values, "items": items, "kind": "order"})
    values = {f: getattr(s, f) for f in s.__struct_fields__ if getattr(s, f) is not fast_decode.UNSET}
    model = CustomerEvent if isinstance(s, fast_decode._CustomerEvent) else Label
    return model.model_construct(**values, kind=fast_decode._TAG[type(s)])


def _rate(
    parse: Callable[[bytes, str | None], Any], data: Sequence[tuple[bytes, str]], repeats: int
) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for raw, kind in data:
            parse(raw, kind)
        runs.append(len(data) / (time.perf_counter() - t0))
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="bench.decode", description=__doc__.splitlines()[0])
    p.add_argument(
        "--orders", type=int, default=5_000, help="simulated orders (with their events and labels)"
    )
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    events = list(Simulator(SimulatorConfig(orders=args.orders, seed=3)).events())
    data = [(to_json(e), e.kind) for e in events]
    orders = [(raw, kind) for raw, kind in data if kind == "order"]
    structs = fast_decode._ANY.decode
    for raw, kind in data[:2000]:  # the same events out of each
        assert parse_event(raw, kind) == fast_decode.parse_event(raw, kind) == _construct(raw, kind)
    figures: dict[str, Any] = {
        "events": len(data),
        "orders": len(orders),
        "mean_event_bytes": round(sum(len(raw) for raw, _ in data) / len(data), 1),
    }
    for prefix, sample in (("", data), ("orders_", orders)):
        pydantic = _rate(parse_event, sample, args.repeats)
        msgspec = _rate(fast_decode.parse_event, sample, args.repeats)
        figures[f"{prefix}events_per_s"] = round(pydantic)
        figures[f"{prefix}msgspec_events_per_s"] = round(msgspec)
        figures[f"{prefix}msgspec_ratio_vs_pydantic"] = round(msgspec / pydantic, 2)
        figures[f"{prefix}msgspec_model_construct_events_per_s"] = round(
            _rate(_construct, sample, args.repeats)
        )
        figures[f"{prefix}msgspec_structs_events_per_s"] = round(
            _rate(lambda b, _k: structs(b), sample, args.repeats)
        )
    section: dict[str, Any] = {**figures, "machine": machine()}
    write_section("decode", section)
    print_figures(console, "bench.decode (parse_event on simulated events, forced kind)", section)
    return section


if __name__ == "__main__":
    main()
