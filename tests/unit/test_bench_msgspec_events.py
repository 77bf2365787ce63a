"""The msgspec decoder of ``bench.decode`` accepts what pydantic accepts, equal, and leaves rejections to it.

Each test feeds the same bytes to the worker's pydantic parser (:func:`schemas.events.parse_event`) and to the
msgspec one (``bench.msgspec_events.parse_event``), with and without a forced ``kind``, and asserts the same
event (class, values, float signs, ``model_fields_set``) or the same error text, the dead-letter reason. So
``bench.decode`` compares two decoders that do the same job.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.msgspec_events import decode, parse_event
from hanzo.ml.schemas.events import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, to_json
from hanzo.ml.schemas.events import parse_event as pydantic_parse_event
from hanzo.ml.streams.simulation import Simulator, SimulatorConfig
from tests.event_samples import EVENT as SAMPLE_EVENT
from tests.event_samples import LABEL
from tests.event_samples import ORDER as SAMPLE_ORDER

ORDER: dict[str, Any] = {
    **SAMPLE_ORDER,
    "schema_version": 1,
    "items": [
        *SAMPLE_ORDER["items"],
        {"product_id": "p.2:x-y_z", "category": "home & garden", "quantity": 1, "unit_price": 0},
    ],
    "account_created_time": 1_600_000_000_000,
}
EVENT: dict[str, Any] = {
    **SAMPLE_EVENT,
    "type": "search",
    "product_id": "p1",
    "order_id": "o1",
    "query": "red shoes",
    "value": 3.5,
    "properties": {"a": 1, "b": "x", "c": True, "d": 1.5},
}
BASES = {"order": ORDER, "customer_event": EVENT, "label": LABEL}
KINDS = (None, "order", "customer_event", "label")

#: values every field is set to in turn: wrong types, bounds, patterns, whitespace that pydantic strips
POOL: list[Any] = [
    None, True, False, 0, -1, 1, 2, 1.0, 1.5, -0.0, 0.1, 1e-320, 10**20, 10**30, -(10**30),
    MIN_EVENT_TIME_MS - 1, MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS, MAX_EVENT_TIME_MS + 1, 1_700_000_000_000.0,
    1_000_000, 1_000_000.0000001, 10_000, 10_001, 10_000_000, 10_000_001,
    "", " ", "x", " x", "x ", "x\n", "\tx", "\u00a0x", "x\u2003", "\x1cx", "x\u0085", "é", "a b", "a/b",
    "EUR", "eur", "EURO", "DE", "de", "D", "1", "1.5", "true", "null",
    "a" * 64, "a" * 65, "a" * 128, "a" * 129, "a" * 256, "a" * 257, " " + "a" * 256,
    "card", "web", "search", "order", "label", "customer_event", "fraud",
    [], {}, [1], {"a": 1}, [{"product_id": "p1", "category": "c", "quantity": 1, "unit_price": 1}],
    {"k": " v"}, {" k": "v"}, {"k": None}, {"k": [1]}, {"k": 10**30}, {"k": -0.0}, {"k": "\u3000"},
]  # fmt: skip
#: raw-text mutations: non-finite literals, bad UTF-8, broken JSON, duplicate keys, BOM, surrogates
RAW: list[tuple[bytes, bytes]] = [
    (b"20.0", b"NaN"),
    (b"20.0", b"Infinity"),
    (b"20.0", b"-Infinity"),
    (b"20.0", b"1e400"),
    (b"20.0", b"-0.0"),
    (b"20.0", b"2E1"),
    (b"3.5", b"NaN"),
    (b"3.5", b"1e309"),
    (b"1.5", b"-1e400"),
    (b'"value": 1', b'"value": Infinity'),
    (b'"value": 1', b'"value": 1e400'),
    (b'"value": 1', b'"value": -0'),
    (b"books", b"bo\xffks"),
    (b"red shoes", b"red \xc3\x28shoes"),
    (b"red shoes", b"red \\ud800 shoes"),
    (b"red shoes", b"red \\u00e9 shoes"),
    (b"red shoes", b"red\\tshoes"),
    (b"books", b"bo\x01ks"),
    (b'"o1"', b'"o1", "order_id": "o2"'),
    (b'"c1"', b'"c1", "customer_id": " c2 "'),
    (b'"c1"', b'"c1", "customer_id": "c 2"'),
    (b'"kind": "order"', b'"kind": "order", "kind": "label"'),
    (b'"kind": "label"', b'"kind": "label", "kind": "label"'),
    (b'"kind": "customer_event"', b'"kind": "customer_event", "kind": "order"'),
    (b'"kind": "label"', b'"\\u006bind": "label"'),
    (b'"kind": "order"', b'"kind": "ord\\u0065r"'),
]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _outcome(parse: Any, data: bytes | str, kind: str | None) -> tuple[Any, ...]:
    try:
        event = parse(data, kind)
    except Exception as exc:  # noqa: BLE001 - the type and text are what is compared
        return ("error", type(exc).__name__, str(exc))
    items = getattr(event, "items", [])
    return (
        "event",
        type(event).__name__,
        repr(event),  # float signs and int/float types too
        event.model_fields_set,
        [i.model_fields_set for i in items],
        event.__pydantic_extra__,
        event.__pydantic_private__,
        to_json(event),
        event,
    )


def _same(data: bytes, kinds: tuple[str | None, ...] = KINDS) -> int:
    """Assert both parsers agree on ``data`` (bytes and text) for each kind; returns the inputs fed."""
    n = 0
    for kind in kinds:
        expected = _outcome(pydantic_parse_event, data, kind)
        assert _outcome(parse_event, data, kind) == expected, (data, kind)
        n += 1
        try:
            text = data.decode()
        except UnicodeDecodeError:
            continue
        assert _outcome(parse_event, text, kind) == expected, (text, kind)
        n += 1
    return n


def _mutations(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field missing, then each field (and each field of the first item) set to each pool value."""
    out = [base, {**base, "extra_field": 1}]
    for key in base:
        out.append({k: v for k, v in base.items() if k != key})
        out += [{**base, key: v} for v in POOL]
    if "items" in base:
        for key in base["items"][0]:
            item = base["items"][0]
            out.append({**base, "items": [{k: v for k, v in item.items() if k != key}]})
            out.append({**base, "items": [{**item, "extra": 1}]})
            out += [{**base, "items": [{**item, key: v}, base["items"][1]]} for v in POOL]
    return out


def test_each_field_mutated_gives_the_same_event_or_reason() -> None:
    fed = accepted = 0
    for base in BASES.values():
        for doc in _mutations(base):
            data = _dumps(doc)
            fed += _same(data)
            accepted += decode(data) is not None
    assert fed > 10_000
    assert accepted > 100  # the msgspec path did take the good ones


def test_raw_text_mutations_give_the_same_event_or_reason() -> None:
    fed = 0
    for old, new in RAW:
        for base in BASES.values():
            data = _dumps(base)
            if old in data:
                fed += _same(data.replace(old, new, 1))
    for data in (
        b"",
        b"  ",
        b"null",
        b"[1, 2]",
        b'"an order"',
        b"{",
        b"\xff",
        b"\xef\xbb\xbf" + _dumps(LABEL),
    ):
        fed += _same(data)
    for base in BASES.values():
        full = _dumps(base)
        fed += _same(b" \n" + full + b"\t ")
        fed += _same(full + b" {}")
        fed += _same(json.dumps(base, indent=2).encode())
        fed += _same(json.dumps(base, ensure_ascii=False).encode())
        for cut in range(1, len(full), 7):
            fed += _same(full[:cut])
    assert fed > 500


def test_seeded_multi_field_mutations_give_the_same_event_or_reason() -> None:
    rng = random.Random(16)
    fed = 0
    for _ in range(3_000):
        base = BASES[rng.choice(list(BASES))]
        doc = dict(base)
        for key in rng.sample(list(base), rng.randint(1, 3)):
            if rng.random() < 0.2:
                del doc[key]
            else:
                doc[key] = rng.choice(POOL)
        if rng.random() < 0.1:
            doc[rng.choice(["kind", "schema_version", "extra"])] = rng.choice(POOL)
        fed += _same(_dumps(doc), (None, rng.choice(KINDS[1:])))
    assert fed > 10_000


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    which=st.sampled_from(sorted(BASES)),
    changes=st.dictionaries(
        st.sampled_from(sorted({k for b in BASES.values() for k in b} | {"extra"})), _json, max_size=3
    ),
    kind=st.sampled_from(KINDS),
)
def test_arbitrary_json_values_give_the_same_event_or_reason(
    which: str, changes: dict[str, Any], kind: str | None
) -> None:
    _same(_dumps({**BASES[which], **changes}), (kind,))


def test_simulated_events_are_all_taken_by_the_msgspec_path_and_equal() -> None:
    events = list(Simulator(SimulatorConfig(orders=1_500, seed=7)).events())
    kinds = {type(e).__name__ for e in events}
    assert {"Order", "CustomerEvent", "Label"} <= kinds
    for e in events:
        data = to_json(e)
        assert decode(data) is not None, data
        assert decode(data, e.kind) is not None, data
        _same(data, (None, e.kind))
        assert parse_event(data) == e
