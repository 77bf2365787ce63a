"""Commerce event schemas (pydantic v2): JSON on the wire, one id per event, event time in epoch ms.

Every event carries ``kind`` so a history file can hold all kinds, one JSON object per line.
A validation failure raises :class:`config.ValidationError` naming the field and the value.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from hanzo.ml.config.errors import ValidationError

SCHEMA_VERSION = 1

#: 2000-01-01 and 2100-01-01 in epoch milliseconds: a timestamp outside is in the wrong unit or wrong.
MIN_EVENT_TIME_MS = 946_684_800_000
MAX_EVENT_TIME_MS = 4_102_444_800_000

EventTimeMs = Annotated[
    int, Field(ge=MIN_EVENT_TIME_MS, le=MAX_EVENT_TIME_MS, description="epoch milliseconds, UTC")
]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

CUSTOMER_EVENT_TYPES = (
    "page_view",
    "search",
    "click",
    "add_to_cart",
    "checkout_started",
    "support_ticket",
    "refund",
    "chargeback",
    "review",
    "signup",
)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)

    schema_version: Literal[1] = 1


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    product_id: Id
    category: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: float = Field(ge=0, le=1_000_000)


class Order(_Event):
    """A placed order.

    Examples
    --------
    >>> o = Order(order_id="o1", customer_id="c1", event_time=1_700_000_000_000,
    ...           items=[OrderItem(product_id="p1", category="books", quantity=2, unit_price=10.0)],
    ...           total=20.0, currency="EUR", payment_method="card", billing_country="DE",
    ...           shipping_country="DE", channel="web")
    >>> o.entity_id, o.event_id
    ('c1', 'o1')
    """

    kind: Literal["order"] = "order"
    order_id: Id
    customer_id: Id
    event_time: EventTimeMs
    items: list[OrderItem] = Field(min_length=1, max_length=500)
    total: float = Field(ge=0, le=10_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: Literal["card", "paypal", "bank_transfer", "gift_card", "crypto", "cod"]
    billing_country: CountryCode
    shipping_country: CountryCode
    channel: Literal["web", "app", "marketplace", "phone"]
    account_created_time: EventTimeMs | None = None

    @property
    def event_id(self) -> str:
        """The id used for dedupe."""
        return self.order_id

    @property
    def entity_id(self) -> str:
        """The key of the order's entity (its customer)."""
        return self.customer_id

    @property
    def product_ids(self) -> list[str]:
        """Distinct product ids of the order's lines, in order (the keys of the product repartition)."""
        return list(dict.fromkeys(item.product_id for item in self.items))


class CustomerEvent(_Event):
    """Something a customer did other than ordering (browsing, support, refunds, ...)."""

    kind: Literal["customer_event"] = "customer_event"
    event_id: Id
    customer_id: Id
    event_time: EventTimeMs
    type: Literal[
        "page_view",
        "search",
        "click",
        "add_to_cart",
        "checkout_started",
        "support_ticket",
        "refund",
        "chargeback",
        "review",
        "signup",
    ]
    product_id: Id | None = None
    order_id: Id | None = None
    query: str | None = Field(None, max_length=256)
    value: float | None = None
    properties: dict[str, str | float | int | bool] = Field(default_factory=dict)

    @property
    def entity_id(self) -> str:
        """The key of the event's entity (its customer)."""
        return self.customer_id


class Label(_Event):
    """The outcome for a subject (an order, a customer) that a model predicted earlier.

    ``target`` names what is labelled (``fraud``, ``churned_90d``, ...); ``subject_id`` is the id the
    prediction was made for, e.g. the order id for fraud.
    """

    kind: Literal["label"] = "label"
    label_id: Id
    target: Id
    subject_id: Id
    value: float
    event_time: EventTimeMs

    @property
    def event_id(self) -> str:
        """The id used for dedupe."""
        return self.label_id


AnyEvent = Annotated[Order | CustomerEvent | Label, Field(discriminator="kind")]
_ANY = pydantic.TypeAdapter(AnyEvent)
_BY_KIND: dict[str, type[_Event]] = {"order": Order, "customer_event": CustomerEvent, "label": Label}


def _describe(err: pydantic.ValidationError, tag: str | None) -> str:
    parts = []
    for e in err.errors()[:5]:
        path = list(e["loc"])
        if tag is not None and path and path[0] == tag:
            path = path[1:]  # the discriminated union puts the kind first
        loc = ".".join(str(p) for p in path) or "<event>"
        if e["type"] == "missing":
            parts.append(f"field '{loc}' is missing")
        else:
            parts.append(f"field '{loc}': value {e.get('input')!r}: {e['msg']}")
    return "; ".join(parts)


def parse_event(data: bytes | str | dict[str, Any], kind: str | None = None) -> Order | CustomerEvent | Label:
    """Parse one event from JSON bytes, text or a dict.

    ``kind`` forces the schema (``order``, ``customer_event``, ``label``); without it the ``kind``
    field of the event decides.

    Examples
    --------
    >>> parse_event(b'{"kind":"label","label_id":"l1","target":"fraud","subject_id":"o1",'
    ...             b'"value":1,"event_time":1700000000000}').subject_id
    'o1'
    >>> parse_event(b'{"kind":"label"}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ValidationError: label: field 'label_id' is missing; field 'target' is missing; ...
    """
    if isinstance(data, bytes | bytearray | str):
        # Fast path: pydantic parses and validates the JSON in one pass. Whatever it rejects goes through
        # the step-by-step checks of _parse_checked, which name the reason (the same for the same input).
        try:
            if kind is None:
                return _ANY.validate_json(data)
            if kind in _BY_KIND:
                return _BY_KIND[kind].model_validate_json(data)  # type: ignore[return-value]
        except pydantic.ValidationError:
            pass
    return _parse_checked(data, kind)


def _parse_checked(data: bytes | str | dict[str, Any], kind: str | None) -> Order | CustomerEvent | Label:
    """Parse step by step (decode, JSON, object, schema version, fields), naming the first step that fails."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"not UTF-8 at byte {exc.start}"
            raise ValidationError(msg) from None
    if isinstance(data, str):
        try:
            data = json.loads(data, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            msg = f"malformed JSON: {exc}"
            raise ValidationError(msg) from None
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise ValidationError(msg)
    if "schema_version" in data and data["schema_version"] != SCHEMA_VERSION:
        msg = f"unknown schema_version {data['schema_version']!r}; this worker reads {SCHEMA_VERSION}"
        raise ValidationError(msg)
    try:
        if kind is not None:
            model = _BY_KIND[kind]
            payload = data if "kind" in data else {**data, "kind": kind}
            return model.model_validate(payload)  # type: ignore[return-value]
        return _ANY.validate_python(data)
    except pydantic.ValidationError as err:
        name = kind or str(data.get("kind", "event"))
        msg = f"{name}: {_describe(err, None if kind else name)}"
        raise ValidationError(msg) from None


def _reject_constant(name: str) -> float:
    msg = f"{name} is not a finite number"
    raise ValueError(msg)


def to_json(event: BaseModel) -> bytes:
    """Serialize an event for the wire."""
    return event.model_dump_json(exclude_none=True).encode()
