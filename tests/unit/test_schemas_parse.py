"""parse_event's one-pass JSON path gives the same event, or the same error, as the step-by-step checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hanzo.ml.config.errors import ValidationError
from hanzo.ml.schemas.events import CustomerEvent, Label, Order, _parse_checked, parse_event
from tests.event_samples import EVENT, LABEL, ORDER


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _with(base: dict[str, Any], **changes: Any) -> bytes:
    return _dumps({**base, **changes})


def _without(base: dict[str, Any], key: str) -> bytes:
    return _dumps({k: v for k, v in base.items() if k != key})


CASES: list[tuple[str, bytes]] = [
    ("order", _dumps(ORDER)),
    ("order", _without(ORDER, "kind")),
    ("order", _with(ORDER, schema_version=1)),
    ("order", _with(ORDER, schema_version=1.0)),
    ("order", _with(ORDER, schema_version=True)),
    ("order", _with(ORDER, schema_version=2)),
    ("order", _with(ORDER, schema_version="1")),
    ("order", _with(ORDER, kind="label")),
    ("order", _with(ORDER, total=-1)),
    ("order", _with(ORDER, total="20.5")),
    ("order", _with(ORDER, total=1e400)),
    ("order", _dumps(ORDER).replace(b"20.0", b"NaN")),
    ("order", _dumps(ORDER).replace(b"20.0", b"-Infinity")),
    ("order", _with(ORDER, event_time=1_700_000_000)),
    ("order", _with(ORDER, event_time=1_700_000_000_000.0)),
    ("order", _with(ORDER, event_time="1700000000000")),
    ("order", _with(ORDER, order_id=" o1 ")),
    ("order", _with(ORDER, order_id="o 1")),
    ("order", _with(ORDER, order_id="")),
    ("order", _with(ORDER, items=[])),
    ("order", _with(ORDER, extra_field=1)),
    ("order", _with(ORDER, account_created_time=None)),
    ("order", _with(ORDER, payment_method="barter")),
    ("order", _without(ORDER, "customer_id")),
    ("order", b'{"order_id": "o1", "order_id": "o2"}'),
    ("order", _dumps(ORDER)[:-5]),
    ("order", b"\xef\xbb\xbf" + _dumps(ORDER)),
    ("order", _dumps(ORDER).replace(b"books", b"bo\xffks")),
    ("order", b"[1, 2]"),
    ("order", b'"an order"'),
    ("order", b"null"),
    ("order", b""),
    ("order", b"   "),
    ("customer_event", _dumps(EVENT)),
    ("customer_event", _with(EVENT, properties={"a": 1, "b": "x", "c": True, "d": 1.5})),
    ("customer_event", _with(EVENT, properties={"a": 12345678901234567890123})),
    ("customer_event", _with(EVENT, properties={"a": None})),
    ("customer_event", _with(EVENT, properties={"a": [1]})),
    ("customer_event", _with(EVENT, properties={"a": 1e400})),
    ("customer_event", _dumps({**EVENT, "properties": {"a": 0.5}}).replace(b"0.5", b"NaN")),
    ("customer_event", _with(EVENT, value="1.5")),
    ("customer_event", _with(EVENT, query=12)),
    ("customer_event", _with(EVENT, query="x" * 300)),
    ("customer_event", _with(EVENT, type="teleport")),
    ("label", _dumps(LABEL)),
    ("label", _with(LABEL, value=True)),
    ("label", _dumps(LABEL).replace(b'"value": 1', b'"value": Infinity')),
    ("label", b'{"kind":"label"}'),
]


def _outcome(parse: Any, data: bytes | str, kind: str | None) -> tuple[str, Any]:
    try:
        return "event", parse(data, kind)
    except ValidationError as exc:
        return "error", str(exc)


@pytest.mark.parametrize(("kind", "data"), CASES)
def test_one_pass_parse_matches_the_checked_parse(kind: str, data: bytes) -> None:
    for forced in (kind, None):
        expected = _outcome(_parse_checked, data, forced)
        assert _outcome(parse_event, data, forced) == expected
        if expected[0] == "event":
            assert (
                type(expected[1]) is {"order": Order, "customer_event": CustomerEvent, "label": Label}[kind]
            )
        try:
            text = data.decode()
        except UnicodeDecodeError:
            continue
        assert _outcome(parse_event, text, forced) == expected


def test_bad_inputs_keep_their_reasons() -> None:
    reasons = {
        b"\xff": "not UTF-8 at byte 0",
        b'{"total": NaN}': "malformed JSON: NaN is not a finite number",
        b"[1]": "expected a JSON object, got list",
        _with(ORDER, schema_version=2): "unknown schema_version 2; this worker reads 1",
    }
    for data, reason in reasons.items():
        with pytest.raises(ValidationError) as info:
            parse_event(data, kind="order")
        assert str(info.value) == reason
