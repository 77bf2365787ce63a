"""decode_label takes only what pydantic's Label takes, with the same field values; the rest goes to pydantic.

Each input goes to :func:`schemas.events.parse_event` (``kind="label"``, the worker's pydantic parser) and to
:func:`schemas.label_wire.decode_label`: where the latter gives a label, pydantic must have accepted the same
bytes with the same values (and types: ``1`` is ``1.0``); where it gives ``None``, the join asks pydantic,
so the dead-letter reason is pydantic's. The inputs are the mutation pools of the msgspec decoder's tests.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.schemas.events import Label, parse_event, to_json
from hanzo.ml.schemas.label_wire import WireLabel, decode_label, to_label
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from tests.event_samples import LABEL
from tests.unit.test_bench_msgspec_events import POOL, RAW

FIELDS = ("label_id", "target", "subject_id", "value", "event_time")


def _fields(lab: WireLabel | Label) -> tuple[Any, ...]:
    return tuple((repr(getattr(lab, f)), type(getattr(lab, f))) for f in FIELDS)


def _agrees(data: bytes | str) -> bool:
    """Assert decode_label's answer is pydantic's; True when decode_label took the input."""
    ours = decode_label(data)
    try:
        theirs: Label | None = parse_event(data, kind="label")  # type: ignore[assignment]
    except ValidationError:
        theirs = None
    if ours is None:
        return False
    assert theirs is not None, data
    assert _fields(ours) == _fields(theirs), data
    assert to_label(ours) == theirs, data
    return True


def _docs() -> list[dict[str, Any]]:
    with_kind = {**LABEL, "schema_version": 1}
    without_kind = {k: v for k, v in LABEL.items() if k != "kind"}
    out: list[dict[str, Any]] = []
    for base in (with_kind, without_kind):
        out += [base, {**base, "extra": 1}]
        for key in [*base, "kind", "schema_version"]:
            out.append({k: v for k, v in base.items() if k != key})
            out += [{**base, key: v} for v in POOL]
    rng = random.Random(16)
    for _ in range(2_000):
        doc = dict(with_kind)
        for key in rng.sample(list(doc), rng.randint(1, 3)):
            doc[key] = rng.choice(POOL)
        out.append(doc)
    return out


def test_each_field_mutated_is_taken_only_as_pydantic_takes_it() -> None:
    docs = _docs()
    taken = sum(_agrees(json.dumps(doc).encode()) for doc in docs)
    taken += sum(_agrees(json.dumps(doc)) for doc in docs)
    assert len(docs) > 2_000
    assert taken > 50  # the fast path did take the good ones


def test_raw_text_mutations_are_taken_only_as_pydantic_takes_them() -> None:
    full = json.dumps({**LABEL, "value": 1.5, "schema_version": 1}).encode()
    fed = 0
    for old, new in [*RAW, (b"1.5", b"NaN"), (b"1.5", b"1e400"), (b'"l1"', b'"l1\\n"'), (b'"o1"', b'"o1 "')]:
        if old in full:
            _agrees(full.replace(old, new, 1))
            fed += 1
    for data in (
        b"",
        b"null",
        b"[]",
        b"{",
        b"\xff",
        b"\xef\xbb\xbf" + full,
        b" \n" + full + b"\t ",
        full + b" {}",
    ):
        _agrees(data)
        fed += 1
    for cut in range(1, len(full)):
        _agrees(full[:cut])
    assert fed > 10


def test_simulated_labels_all_take_the_fast_path() -> None:
    labels = [e for e in Simulator(SimulatorConfig(orders=500, seed=3)).events() if isinstance(e, Label)]
    assert labels
    for lab in labels:
        assert _agrees(to_json(lab))
