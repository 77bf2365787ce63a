"""schemas.wire_json.dumps reads back (json.loads) as json.dumps's output does, for any value json writes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hanzo.ml.schemas.dead_letters import DeadLetter
from hanzo.ml.schemas.wire_json import dumps


def _read(raw: bytes | str) -> str:
    """What a reader gets, in a canonical text (NaN and the float forms included)."""
    return json.dumps(json.loads(raw))


def _same(value: Any) -> None:
    assert _read(dumps(value)) == _read(json.dumps(value))


SCORE = {
    "score": 0.123456789,
    "model": "fraud_detection",
    "version": "1.2.3",
    "examples": 12_345,
    "scored_at_ms": 1_767_225_673_888,
    "event_time_ms": 1_767_225_673_888,
}


def test_hot_path_records_read_back_the_same() -> None:
    x = {f"f{i}": i * 1.2345 for i in range(20)}
    for value in (
        SCORE,
        {"subject": "o1", **SCORE},
        {"x": x, "score": 0.5, "event_time_ms": 1_767_225_673_888},
        {"x": {**x, "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")}, "score": None},
        {"score": np.float64(0.3), "n": 5, "neg0": -0.0, "tiny": 5e-324, "big": 1.7976931348623157e308},
        {"text": 'é ☃ \U0001f600 \x00 \n " \\', "ids": ["a", "b"], "t": (1, 2), "b": [True, False]},
        {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        {"huge": 2**70, "neg": -(2**63), "max": 2**64 - 1},
        {"surrogate": "\ud800"},
        [],
        {},
        "text",
        1e16,
    ):
        _same(value)


def test_numpy_values_are_written_as_their_numbers() -> None:
    assert json.loads(dumps({"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3)})) == {
        "a": 0.5,
        "b": 3,
        "c": [0, 1, 2],
    }
    assert json.loads(dumps({"a": np.float32(0.5), "k": None})) == {"a": 0.5, "k": None}


def test_dead_letters_round_trip() -> None:
    for key, value in ((b"k", b"\xff{"), (None, None), (b"", b"{}")):
        d = DeadLetter("schema", "order: field 'total' ... \u00e9", "orders", 3, 42, key, value)
        assert DeadLetter.from_json(d.to_json()) == d


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(_values)
def test_any_json_value_reads_back_the_same(value: Any) -> None:
    _same(value)
