"""A measured alternative to the hot path decoder: msgspec decodes and validates, pydantic models come out.

:func:`decode` either returns exactly the event that :func:`schemas.events.parse_event` builds from the same
bytes (the same model class, field values, ``model_fields_set``) or ``None``; :func:`parse_event` then asks
pydantic, which accepts or names the reason. It never accepts what pydantic rejects, so it is stricter
wherever it cannot prove it treats an input the same: a string pydantic would strip (surrounding
whitespace), a number in a form pydantic coerces (``1.0`` for an int, ``"5"``, ``true``), an unknown field,
a non-finite number. ``tests/unit/test_bench_msgspec_events.py`` feeds both the same good and bad inputs.

Why it is not the worker's decoder: ``bench.decode`` measures it slower than pydantic's one-pass
``validate_json`` (pydantic-core validates *and* builds the models in Rust). msgspec's decode and validation
alone take ~0.7 us an order here against pydantic's ~5 us, but building the three pydantic objects of a
two-line order in Python costs more than the whole of pydantic's pass. It would pay only if the hot path
carried msgspec Structs instead of the public pydantic models.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from hanzo.ml.schemas.events import (
    _BY_KIND,
    MAX_EVENT_TIME_MS,
    MIN_EVENT_TIME_MS,
    CustomerEvent,
    Label,
    Order,
    OrderItem,
)
from hanzo.ml.schemas.events import parse_event as pydantic_parse_event
from hanzo.ml.schemas.label_wire import WireLabel as _Label  # the Struct the label join decodes into

# msgspec checks a pattern with a Python ``re.search`` per string (~0.5 us each): the ids, currency and
# countries of an event are checked here in one ``fullmatch`` instead (:func:`_ids_ok`), after the decode.
_Id = Annotated[str, Meta(min_length=1, max_length=128)]
_Country = Annotated[str, Meta(min_length=2, max_length=2)]
_Time = Annotated[int, Meta(ge=MIN_EVENT_TIME_MS, le=MAX_EVENT_TIME_MS)]
#: the same ``Literal`` choices as the pydantic models
_PaymentMethod = Order.model_fields["payment_method"].annotation
_Channel = Order.model_fields["channel"].annotation
_EventType = CustomerEvent.model_fields["type"].annotation
#: finite (pydantic's ``allow_inf_nan=False``): JSON has no NaN, but ``1e400`` decodes to infinity
_Finite = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


#: ids joined by a newline (no id may hold one): each is ``[A-Za-z0-9_.:\-]+``, as pydantic's ``Id`` pattern
_IDS = re.compile(r"[A-Za-z0-9_.:\-]+(?:\n[A-Za-z0-9_.:\-]+)*")


def _upper(codes: str) -> bool:
    """``codes`` is ASCII capitals only (currency and countries, whose lengths msgspec checked)."""
    return codes.isascii() and codes.isalpha() and codes.isupper()


class _OrderItem(Struct, forbid_unknown_fields=True):
    product_id: _Id
    category: Annotated[str, Meta(min_length=1, max_length=64)]  # OrderItem does not strip whitespace
    quantity: Annotated[int, Meta(gt=0, le=10_000)]
    unit_price: Annotated[float, Meta(ge=0, le=1_000_000)]


class _Order(Struct, tag_field="kind", tag="order", forbid_unknown_fields=True):
    order_id: _Id
    customer_id: _Id
    event_time: _Time
    items: Annotated[list[_OrderItem], Meta(min_length=1, max_length=500)]
    total: Annotated[float, Meta(ge=0, le=10_000_000)]
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    payment_method: _PaymentMethod
    billing_country: _Country
    shipping_country: _Country
    channel: _Channel
    schema_version: Literal[1] | UnsetType = UNSET
    account_created_time: _Time | None | UnsetType = UNSET


class _CustomerEvent(Struct, tag_field="kind", tag="customer_event", forbid_unknown_fields=True):
    event_id: _Id
    customer_id: _Id
    event_time: _Time
    type: _EventType
    schema_version: Literal[1] | UnsetType = UNSET
    product_id: _Id | None | UnsetType = UNSET
    order_id: _Id | None | UnsetType = UNSET
    query: Annotated[str, Meta(max_length=256)] | None | UnsetType = UNSET
    value: _Finite | None | UnsetType = UNSET
    # values checked in _customer_event: pydantic strips their strings and rejects non-finite floats
    properties: dict[str, Any] | UnsetType = UNSET


_ANY = msgspec.json.Decoder(_Order | _CustomerEvent | _Label)
#: one kind, the ``kind`` field optional (as pydantic's model default): only for events without ``kind``
_ONE = {
    "order": msgspec.json.Decoder(_Order),
    "customer_event": msgspec.json.Decoder(_CustomerEvent),
    "label": msgspec.json.Decoder(_Label),
}
_TAG = {_Order: "order", _CustomerEvent: "customer_event", _Label: "label"}
_set = object.__setattr__


def _build(cls: type[Any], values: dict[str, Any], fields_set: set[str]) -> Any:
    """What ``cls.model_construct`` does for these models (no aliases, extras or private attributes)."""
    m = cls.__new__(cls)
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", fields_set)
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


_ITEM_FIELDS = frozenset(("product_id", "category", "quantity", "unit_price"))
_ORDER_FIELDS = frozenset(
    (
        "order_id",
        "customer_id",
        "event_time",
        "items",
        "total",
        "currency",
        "payment_method",
        "billing_country",
        "shipping_country",
        "channel",
    )
)
_CUSTOMER_EVENT_FIELDS = frozenset(("event_id", "customer_id", "event_time", "type"))
_LABEL_FIELDS = frozenset(("label_id", "target", "subject_id", "value", "event_time"))


def _fields_set(required: frozenset[str], has_kind: bool, optional: dict[str, Any]) -> set[str]:
    fields = set(required)
    if has_kind:
        fields.add("kind")
    fields.update(name for name, v in optional.items() if v is not UNSET)
    return fields


def _order(s: _Order, has_kind: bool) -> Order | None:
    ids = "\n".join([s.order_id, s.customer_id, *[i.product_id for i in s.items]])
    if _IDS.fullmatch(ids) is None or not _upper(s.currency + s.billing_country + s.shipping_country):
        return None
    items = [
        _build(
            OrderItem,
            {
                "product_id": i.product_id,
                "category": i.category,
                "quantity": i.quantity,
                "unit_price": i.unit_price,
            },
            set(_ITEM_FIELDS),
        )
        for i in s.items
    ]
    acct = s.account_created_time
    fields = _fields_set(
        _ORDER_FIELDS, has_kind, {"schema_version": s.schema_version, "account_created_time": acct}
    )
    values = {
        "schema_version": 1,
        "kind": "order",
        "order_id": s.order_id,
        "customer_id": s.customer_id,
        "event_time": s.event_time,
        "items": items,
        "total": s.total,
        "currency": s.currency,
        "payment_method": s.payment_method,
        "billing_country": s.billing_country,
        "shipping_country": s.shipping_country,
        "channel": s.channel,
        "account_created_time": None if acct is UNSET else acct,
    }
    return _build(Order, values, fields)  # type: ignore[no-any-return]


def _stripped(text: str) -> bool:
    """True when pydantic's ``str_strip_whitespace`` would leave ``text`` as it is (checked conservatively).

    Python's ``isspace`` holds for every character Rust's ``trim`` removes (and a few more: those go the
    pydantic way too).
    """
    return not text or not (text[0].isspace() or text[-1].isspace())


def _same_properties(props: dict[str, Any]) -> bool:
    """Whether pydantic's ``dict[str, str | float | int | bool]`` would keep ``props`` as decoded."""
    for k, v in props.items():
        if not _stripped(k):
            return False
        t = type(v)
        if t is str:
            if not _stripped(v):
                return False
        elif t is float:
            if v - v != 0.0:  # inf or nan
                return False
        elif t is not int and t is not bool:
            return False
    return True


def _customer_event(s: _CustomerEvent, has_kind: bool) -> CustomerEvent | None:
    query, props = s.query, s.properties
    ids = [s.event_id, s.customer_id]
    ids += [i for i in (s.product_id, s.order_id) if isinstance(i, str)]
    if _IDS.fullmatch("\n".join(ids)) is None:
        return None
    if isinstance(query, str) and not _stripped(query):
        return None
    if props is not UNSET and not _same_properties(props):
        return None
    optional = {
        "schema_version": s.schema_version,
        "product_id": s.product_id,
        "order_id": s.order_id,
        "query": query,
        "value": s.value,
        "properties": props,
    }
    fields = _fields_set(_CUSTOMER_EVENT_FIELDS, has_kind, optional)
    values = {
        "schema_version": 1,
        "kind": "customer_event",
        "event_id": s.event_id,
        "customer_id": s.customer_id,
        "event_time": s.event_time,
        "type": s.type,
        "product_id": None if s.product_id is UNSET else s.product_id,
        "order_id": None if s.order_id is UNSET else s.order_id,
        "query": None if query is UNSET else query,
        "value": None if s.value is UNSET else s.value,
        "properties": {} if props is UNSET else props,
    }
    return _build(CustomerEvent, values, fields)  # type: ignore[no-any-return]


def _label(s: _Label, has_kind: bool) -> Label | None:
    if _IDS.fullmatch(f"{s.label_id}\n{s.target}\n{s.subject_id}") is None:
        return None
    fields = _fields_set(_LABEL_FIELDS, has_kind, {"schema_version": s.schema_version})
    values = {
        "schema_version": 1,
        "kind": "label",
        "label_id": s.label_id,
        "target": s.target,
        "subject_id": s.subject_id,
        "value": s.value,
        "event_time": s.event_time,
    }
    return _build(Label, values, fields)  # type: ignore[no-any-return]


def decode(data: bytes | bytearray | str, kind: str | None = None) -> Order | CustomerEvent | Label | None:
    """The event pydantic would parse from ``data`` (``kind`` forces the schema), or ``None``: ask pydantic.

    Examples
    --------
    >>> decode(b'{"kind":"label","label_id":"l1","target":"fraud","subject_id":"o1",'
    ...        b'"value":1,"event_time":1700000000000}').value
    1.0
    >>> decode(b'{"kind":"label","label_id":" l1"}') is None
    True
    """
    has_kind = True
    try:
        s = _ANY.decode(data)
    except msgspec.MsgspecError:
        if kind is None:
            return None
        # A forced kind makes ``kind`` optional; any other failure goes to pydantic as well.
        try:
            s = _ONE[kind].decode(data)
        except (msgspec.MsgspecError, KeyError):
            return None
        has_kind = False  # the union decoder failed, the single one did not: ``kind`` was absent
    if kind is not None and _TAG[type(s)] != kind:
        return None
    if type(s) is _Order:
        return _order(s, has_kind)  # type: ignore[arg-type]
    if type(s) is _Label:
        return _label(s, has_kind)  # type: ignore[arg-type]
    return _customer_event(s, has_kind)  # type: ignore[arg-type]


def parse_event(data: bytes | str | dict[str, Any], kind: str | None = None) -> Order | CustomerEvent | Label:
    """:func:`schemas.events.parse_event` with :func:`decode` first: the same event or the same error."""
    if isinstance(data, bytes | bytearray | str) and (kind is None or kind in _BY_KIND):
        event = decode(data, kind)
        if event is not None:
            return event
    return pydantic_parse_event(data, kind)
