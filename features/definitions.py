"""Feature definitions: declarative windowed aggregates, the fields they read, and request-time features.

An :class:`Aggregate` says *what* to compute (``sum`` of ``total`` over ``24h`` per ``customer`` from
``orders``); the online stores say *how*. Definitions are written once, in ``config/features.yaml``
(:func:`load_definitions`) or in Python, and checked when they are made: an unknown aggregation, window,
entity, field or filter raises :class:`config.ConfigError` naming it.

Fields an aggregate may read (``field``):

================  ===================================================================  ===========
source            field                                                                kind
================  ===================================================================  ===========
orders            ``total``, ``n_items`` (units), ``n_lines``, ``account_age_days``    number
orders            ``items.quantity``, ``items.unit_price``, ``items.revenue``          number/item
orders            ``items.product_id``, ``items.category``                             text/item
orders            ``order_id``, ``payment_method``, ``channel``, ``currency``,         text
                  ``billing_country``, ``shipping_country``
customer_events   ``value``                                                            number
customer_events   ``type``, ``product_id``, ``order_id``, ``query``                    text
================  ===================================================================  ===========

Item fields give one value per order line; when the entity is itself an item field (``product``,
``category`` of an order) only the lines of that entity count. ``count`` and ``time_since_last`` take no
field; ``distinct_count`` takes any field; the others need a number.

Entities: ``customer`` (``customer_id``), ``product`` (order lines' ``product_id``, or the event's
``product_id``), ``category`` (order lines' ``category``), or any text field ``<e>`` / ``<e>_id`` of the
source (e.g. ``billing_country``, ``order``). One order updates every product it contains once.
"""

from __future__ import annotations

import difflib
import logging
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features.windows import (
    DAY_MS,
    NO_PREVIOUS_EVENT,
    default_bucket_ms,
    format_duration,
    parse_duration,
    parse_window,
)
from hanzo.ml.schemas.events import CUSTOMER_EVENT_TYPES, CustomerEvent, Order

logger = logging.getLogger(__name__)

#: The shipped definitions.
DEFAULT_DEFINITIONS_PATH = Path(__file__).resolve().parent.parent / "config" / "features.yaml"

AGGREGATIONS = ("count", "sum", "mean", "min", "max", "distinct_count", "last", "time_since_last")
SOURCES = ("orders", "customer_events")
_NO_FIELD = ("count", "time_since_last")
_ANY_FIELD = ("distinct_count",)

Event = Order | CustomerEvent
#: What one event gives one aggregate of one entity: nothing, a number, ``(sum, n)`` for means, a set.
Input = None | float | tuple[float, float] | frozenset[str]


@dataclass(frozen=True)
class SourceField:
    """A field an aggregate can read: how to get its values from an event."""

    numeric: bool
    item: bool  # one value per order line
    get: Callable[[Any], Any]


def _order_age_days(o: Order) -> float | None:
    if o.account_created_time is None:
        return None
    return (o.event_time - o.account_created_time) / DAY_MS


FIELDS: dict[str, dict[str, SourceField]] = {
    "orders": {
        "total": SourceField(True, False, lambda o: o.total),
        "n_items": SourceField(True, False, lambda o: float(sum(i.quantity for i in o.items))),
        "n_lines": SourceField(True, False, lambda o: float(len(o.items))),
        "account_age_days": SourceField(True, False, _order_age_days),
        "items.quantity": SourceField(True, True, lambda i: float(i.quantity)),
        "items.unit_price": SourceField(True, True, lambda i: i.unit_price),
        "items.revenue": SourceField(True, True, lambda i: i.quantity * i.unit_price),
        "items.product_id": SourceField(False, True, lambda i: i.product_id),
        "items.category": SourceField(False, True, lambda i: i.category),
        **{
            f: SourceField(False, False, operator.attrgetter(f))
            for f in ("order_id", "customer_id", "payment_method", "channel", "currency")
            + ("billing_country", "shipping_country")
        },
    },
    "customer_events": {
        "value": SourceField(True, False, lambda e: e.value),
        **{
            f: SourceField(False, False, operator.attrgetter(f))
            for f in ("type", "customer_id", "product_id", "order_id", "query")
        },
    },
}

#: Entities whose key is not ``<entity>_id``/``<entity>`` of the source.
_ENTITY_FIELDS: dict[tuple[str, str], str] = {
    ("product", "orders"): "items.product_id",
    ("category", "orders"): "items.category",
}

#: Control characters the Redis state uses as separators; text values get a space instead.
_SEPARATORS = str.maketrans({c: " " for c in "\x1c\x1d\x1e\x1f"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_WHERE = re.compile(r"""^\s*([a-z_][a-z0-9_]*)\s*==\s*(?:"([^"]*)"|'([^']*)'|([\w.:\-]+))\s*$""")


def close_matches(word: str, options: Sequence[str]) -> str:
    """Return a ``; did you mean ...?`` hint, or ``""``."""
    found = difflib.get_close_matches(word, list(options), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(f) for f in found)}?" if found else ""


def entity_key_field(entity: str, source: str) -> str | None:
    """Return the source field holding the key of ``entity`` (``None``: the source has none)."""
    if (entity, source) in _ENTITY_FIELDS:
        return _ENTITY_FIELDS[entity, source]
    fields = FIELDS[source]
    for name in (f"{entity}_id", entity):
        if name in fields and not fields[name].numeric and not fields[name].item:
            return name
    return None


@lru_cache(maxsize=1024)  # read per event and aggregate on the in-memory path
def _bucket_ms(window: str, bucket: str | None) -> int:
    w = parse_window(window)
    if w is None:
        return 0
    return parse_duration(bucket) if bucket is not None else default_bucket_ms(w)


@lru_cache(maxsize=1024)
def _n_buckets(window: str, bucket: str | None) -> int:
    w = parse_window(window)
    return 0 if w is None else w // _bucket_ms(window, bucket)


class Aggregate(BaseModel):
    """One windowed aggregate of one entity, computed by event time.

    Examples
    --------
    >>> a = Aggregate(name="spend_24h", entity="customer", source="orders", field="total",
    ...               aggregation="sum", window="24h")
    >>> a.bucket_ms // 60_000, a.n_buckets, a.precision, a.dtype
    (15, 96, '15m', 'float')
    >>> Aggregate(name="x", entity="customer", source="orders", aggregation="median", window="1h")
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ConfigError: feature 'x': unknown aggregation 'median'; expected one of count, sum, mean, min, max, distinct_count, last, time_since_last
    """  # noqa: E501

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    entity: str
    source: str
    aggregation: str
    window: str = "lifetime"
    field: str | None = None
    where: str | None = Field(
        None, description='equality filter on a text field, e.g. type == "support_ticket"'
    )
    bucket: str | None = Field(None, description="bucket size overriding the rule table, e.g. '5m'")
    description: str = ""
    dtype: Literal["int", "float"] = "float"
    default: float | None = Field(None, description="value when the window holds no event")

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            agg = data.get("aggregation")
            if "dtype" not in data:
                data["dtype"] = "int" if agg in ("count", "distinct_count") else "float"
            if "default" not in data:
                data["default"] = {"count": 0.0, "sum": 0.0, "distinct_count": 0.0}.get(
                    str(agg), NO_PREVIOUS_EVENT if agg == "time_since_last" else None
                )
        return data

    @model_validator(mode="after")
    def _check(self) -> Aggregate:
        who = f"feature {self.name!r}"
        if not _NAME.match(self.name):
            msg = f"{who}: a feature name is lower case letters, digits and '_', starting with a letter"
            raise ConfigError(msg)
        if self.aggregation not in AGGREGATIONS:
            msg = (
                f"{who}: unknown aggregation {self.aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
            )
            raise ConfigError(msg)
        if self.source not in SOURCES:
            msg = f"{who}: unknown source {self.source!r}; expected one of {', '.join(SOURCES)}"
            raise ConfigError(msg)
        try:
            window_ms = parse_window(self.window)
            bucket_ms = parse_duration(self.bucket) if self.bucket is not None else None
        except ConfigError as exc:
            msg = f"{who}: {exc}"
            raise ConfigError(msg) from None
        if window_ms is not None:
            b = bucket_ms or default_bucket_ms(window_ms)
            if window_ms % b:
                msg = (
                    f"{who}: window {self.window!r} is not a whole number of {format_duration(b)} buckets; "
                    f"pick another window or state a 'bucket' that divides it"
                )
                raise ConfigError(msg)
        elif self.bucket is not None:
            msg = f"{who}: a lifetime aggregate has no buckets; remove 'bucket: {self.bucket}'"
            raise ConfigError(msg)
        if entity_key_field(self.entity, self.source) is None:
            msg = (
                f"{who}: unknown entity {self.entity!r} for source {self.source!r}; use customer, product, "
                f"category or a text field of the source ({', '.join(sorted(self._text_fields()))})"
            )
            raise ConfigError(msg)
        self._check_field(who)
        if self.where is not None:
            self.where_clause()
        return self

    def _text_fields(self) -> list[str]:
        return [n for n, f in FIELDS[self.source].items() if not f.numeric and not f.item]

    def _check_field(self, who: str) -> None:
        fields = FIELDS[self.source]
        if self.aggregation in _NO_FIELD:
            if self.field is not None:
                msg = f"{who}: {self.aggregation} takes no field; remove 'field: {self.field}'"
                raise ConfigError(msg)
            return
        if self.field is None:
            msg = f"{who}: {self.aggregation} needs a field (one of {', '.join(fields)})"
            raise ConfigError(msg)
        if self.field not in fields:
            hint = close_matches(self.field, list(fields))
            msg = f"{who}: unknown field {self.field!r} of {self.source}{hint}"
            raise ConfigError(msg)
        if self.aggregation not in _ANY_FIELD and not fields[self.field].numeric:
            msg = f"{who}: {self.aggregation} needs a number and {self.field!r} is text; use distinct_count"
            raise ConfigError(msg)

    def where_clause(self) -> tuple[str, str] | None:
        """Return the filter as ``(field, value)``, or ``None``."""
        if self.where is None:
            return None
        m = _WHERE.match(self.where)
        if m is None:
            msg = f'feature {self.name!r}: filter {self.where!r} is not `<field> == "<value>"`'
            raise ConfigError(msg)
        name, value = m.group(1), next(g for g in m.groups()[1:] if g is not None)
        if name not in self._text_fields():
            msg = (
                f"feature {self.name!r}: filter field {name!r} is not a text field of {self.source}"
                f"{close_matches(name, self._text_fields())}"
            )
            raise ConfigError(msg)
        if name == "type" and value not in CUSTOMER_EVENT_TYPES:
            msg = (
                f"feature {self.name!r}: unknown event type {value!r}"
                f"{close_matches(value, list(CUSTOMER_EVENT_TYPES))}"
            )
            raise ConfigError(msg)
        return name, value

    @property
    def window_ms(self) -> int | None:
        """Window length in ms, ``None`` for lifetime."""
        return parse_window(self.window)

    @property
    def bucket_ms(self) -> int:
        """Bucket size in ms (0 for lifetime)."""
        return _bucket_ms(self.window, self.bucket)

    @property
    def n_buckets(self) -> int:
        """Buckets per window (0 for lifetime)."""
        return _n_buckets(self.window, self.bucket)

    @property
    def precision(self) -> str | None:
        """The bucket size as text (``None`` for lifetime)."""
        return format_duration(self.bucket_ms) if self.bucket_ms else None

    @property
    def event_type(self) -> type[Order] | type[CustomerEvent]:
        """The event class this aggregate reads."""
        return Order if self.source == "orders" else CustomerEvent


def check_definitions(aggregates: Sequence[Aggregate]) -> tuple[Aggregate, ...]:
    """Refuse duplicate names; return the definitions as a tuple."""
    seen: set[str] = set()
    for a in aggregates:
        if a.name in seen:
            msg = f"feature {a.name!r} is defined twice; feature names are unique across entities"
            raise ConfigError(msg)
        seen.add(a.name)
    return tuple(aggregates)


def load_definitions(path: str | Path | None = None) -> tuple[Aggregate, ...]:
    """Load the aggregates of a features YAML file (default: the shipped ``config/features.yaml``).

    Examples
    --------
    >>> defs = load_definitions()
    >>> next(a for a in defs if a.name == "spend_24h").aggregation
    'sum'
    """
    p = Path(path) if path is not None else DEFAULT_DEFINITIONS_PATH
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read feature definitions {p}: {exc.strerror}"
        raise ConfigError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"feature definitions {p} are not valid YAML: {exc}"
        raise ConfigError(msg) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        msg = f"feature definitions {p}: expected a mapping with a 'features:' list"
        raise ConfigError(msg)
    out = []
    for i, entry in enumerate(doc["features"]):
        try:
            out.append(Aggregate.model_validate(entry))
        except pydantic.ValidationError as exc:
            name = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
            errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<entry>'}: {e['msg']}" for e in exc.errors())
            msg = f"{p}: feature {name!r}: {errs}"
            raise ConfigError(msg) from None
        except ConfigError as exc:
            msg = f"{p}: {exc}"
            raise ConfigError(msg) from None
    return check_definitions(out)


def source_of(event: Event) -> str:
    """``orders`` or ``customer_events``."""
    if isinstance(event, Order):
        return "orders"
    if isinstance(event, CustomerEvent):
        return "customer_events"
    msg = f"event {type(event).__name__} carries no features; expected Order or CustomerEvent"
    raise ConfigError(msg)


def entity_keys(entity: str, event: Event) -> list[str]:
    """Return the keys of ``entity`` in ``event`` (several products for an order), in first-seen order."""
    field = entity_key_field(entity, source_of(event))
    if field is None:
        return []
    spec = FIELDS[source_of(event)][field]
    values = [spec.get(i) for i in event.items] if spec.item else [spec.get(event)]  # type: ignore[union-attr]
    return list(dict.fromkeys(str(v) for v in values if v is not None))


def input_function(agg: Aggregate) -> Callable[[Event, str], Input]:
    """Return a function giving what one event contributes to ``agg`` of the entity with key ``key``.

    ``None`` means nothing (another source, filtered out, no value); otherwise ``1.0`` for counts and
    ``time_since_last``, the reduced number for ``sum``/``min``/``max``/``last``, ``(sum, n)`` for ``mean``
    and a set of text values for ``distinct_count``.

    Examples
    --------
    >>> from hanzo.ml.schemas.events import OrderItem
    >>> o = Order(order_id="o1", customer_id="c1", event_time=1_700_000_000_000, total=35.0,
    ...           items=[OrderItem(product_id="p1", category="books", quantity=2, unit_price=10.0),
    ...                  OrderItem(product_id="p2", category="books", quantity=3, unit_price=5.0)],
    ...           currency="EUR", payment_method="card", billing_country="DE", shipping_country="DE",
    ...           channel="web")
    >>> units = Aggregate(name="u", entity="product", source="orders", field="items.quantity",
    ...                   aggregation="sum", window="24h")
    >>> input_function(units)(o, "p2")
    3.0
    """
    source, kind, clause = agg.source, agg.aggregation, agg.where_clause()
    spec = FIELDS[source][agg.field] if agg.field is not None else None
    key_field = entity_key_field(agg.entity, source)
    key_spec = FIELDS[source][key_field] if key_field is not None else None
    per_key_items = spec is not None and spec.item and key_spec is not None and key_spec.item
    event_type = agg.event_type

    def contribution(event: Event, key: str) -> Input:
        if type(event) is not event_type:
            return None
        if clause is not None and str(getattr(event, clause[0])) != clause[1]:
            return None
        if spec is None:
            return 1.0
        if spec.item:
            items = event.items  # type: ignore[union-attr]
            if per_key_items:
                kget = key_spec.get  # type: ignore[union-attr]
                items = [i for i in items if str(kget(i)) == key]
            values = [spec.get(i) for i in items]
        else:
            values = [spec.get(event)]
        values = [v for v in values if v is not None]
        if not values:
            return None
        if kind == "distinct_count":
            return frozenset(_text_value(v) for v in values)
        nums = [float(v) for v in values]
        if kind == "sum":
            return sum(nums)
        if kind == "mean":
            return (sum(nums), float(len(nums)))
        if kind == "min":
            return min(nums)
        if kind == "max":
            return max(nums)
        return nums[-1]  # last

    return contribution


def _text_value(v: Any) -> str:
    """A text value as the stores keep it: the separators of the Redis state become spaces."""
    s = str(v)
    return s if s.isprintable() else s.translate(_SEPARATORS)  # the separators are not printable


def _reducer(kind: str) -> Callable[[list[Any]], Input]:
    """How ``kind`` reduces an event's values of its field (numbers for all but ``distinct_count``)."""
    reducers: dict[str, Callable[[list[Any]], Input]] = {
        "distinct_count": lambda values: frozenset(_text_value(v) for v in values),
        "sum": sum,
        "mean": lambda nums: (sum(nums), float(len(nums))),
        "min": min,
        "max": max,
        "last": operator.itemgetter(-1),
    }
    return reducers[kind]


@dataclass(frozen=True)
class _Reader:
    """One field (or none) of one event type under one filter, and the aggregates fed by its values.

    ``fills`` are ``(plan position, reducer)`` of the aggregates that reduce the values (the numeric ones
    get them as floats, converted once); ``ones`` the positions that count the event (no field).
    """

    spec: SourceField | None
    per_key: Callable[[Any], Any] | None  # an item field of the entity's own lines: the key's getter
    ones: tuple[int, ...]
    text: tuple[tuple[int, Callable[[list[Any]], Input]], ...]
    numeric: tuple[tuple[int, Callable[[list[Any]], Input]], ...]

    def fill(self, out: list[Input], event: Event, key: str) -> None:
        """Write this reader's contributions of ``event`` to the entity ``key`` into ``out``."""
        for p in self.ones:
            out[p] = 1.0
        spec = self.spec
        if spec is None:
            return
        if spec.item:
            items = event.items  # type: ignore[union-attr]
            kget = self.per_key
            if kget is not None:
                items = [i for i in items if str(kget(i)) == key]
            values = [v for v in map(spec.get, items) if v is not None]
            if not values:
                return
        else:
            v = spec.get(event)
            if v is None:
                return
            values = [v]
        for p, reduce in self.text:
            out[p] = reduce(values)
        if self.numeric:
            nums = [float(v) for v in values]
            for p, reduce in self.numeric:
                out[p] = reduce(nums)


@dataclass(frozen=True)
class _EventInputs:
    """The readers of one event type: unfiltered ones, and per filter field, per value, the filtered ones."""

    readers: tuple[_Reader, ...]
    filtered: tuple[tuple[str, dict[str, tuple[_Reader, ...]]], ...]
    n: int

    def __call__(self, event: Event, key: str) -> tuple[Input, ...]:
        out: list[Input] = [None] * self.n
        for reader in self.readers:
            reader.fill(out, event, key)
        for field, by_value in self.filtered:
            for reader in by_value.get(str(getattr(event, field)), ()):
                reader.fill(out, event, key)
        return tuple(out)


def _event_inputs(aggs: Sequence[Aggregate], event_type: type) -> _EventInputs:
    """The precomputed plan of :func:`input_functions` for the events of one type."""
    keyed: dict[tuple[tuple[str, str] | None, str | None, bool], list[int]] = {}
    for p, agg in enumerate(aggs):
        if agg.event_type is not event_type:
            continue
        per_key = False
        if agg.field is not None:
            key_field = entity_key_field(agg.entity, agg.source)
            per_key = (
                FIELDS[agg.source][agg.field].item
                and key_field is not None
                and FIELDS[agg.source][key_field].item
            )
        keyed.setdefault((agg.where_clause(), agg.field, per_key), []).append(p)
    readers: list[_Reader] = []
    filtered: dict[str, dict[str, list[_Reader]]] = {}
    for (clause, field, per_key), positions in keyed.items():
        source = aggs[positions[0]].source
        key_field = entity_key_field(aggs[positions[0]].entity, source)
        kinds = [(p, aggs[p].aggregation) for p in positions]
        reader = _Reader(
            FIELDS[source][field] if field is not None else None,
            FIELDS[source][key_field].get if per_key and key_field is not None else None,
            tuple(p for p, k in kinds if field is None),
            tuple((p, _reducer(k)) for p, k in kinds if field is not None and k == "distinct_count"),
            tuple((p, _reducer(k)) for p, k in kinds if field is not None and k != "distinct_count"),
        )
        if clause is None:
            readers.append(reader)
        else:
            filtered.setdefault(clause[0], {}).setdefault(clause[1], []).append(reader)
    return _EventInputs(
        tuple(readers),
        tuple((f, {v: tuple(rs) for v, rs in by.items()}) for f, by in filtered.items()),
        len(aggs),
    )


def input_functions(aggs: Sequence[Aggregate]) -> Callable[[Event, str], tuple[Input, ...]]:
    """Return one function giving every aggregate's :func:`input_function` value at once, in order.

    The plan is made once per event type: the aggregates reading one field under one filter share one
    reader, so ``count``/``sum``/``mean``/``max`` of the same field cost one extraction (and one float
    conversion), and a filtered aggregate is found by its filter value, not tested per aggregate.

    Examples
    --------
    >>> from hanzo.ml.schemas.events import OrderItem
    >>> o = Order(order_id="o1", customer_id="c1", event_time=1_700_000_000_000, total=35.0,
    ...           items=[OrderItem(product_id="p1", category="books", quantity=2, unit_price=10.0)],
    ...           currency="EUR", payment_method="card", billing_country="DE", shipping_country="DE",
    ...           channel="web")
    >>> aggs = [Aggregate(name=n, entity="customer", source="orders", field="total", aggregation=k,
    ...                   window="24h") for n, k in (("s", "sum"), ("m", "mean"), ("x", "max"))]
    >>> input_functions(aggs)(o, "c1")
    (35.0, (35.0, 1.0), 35.0)
    """
    plans = {t: _event_inputs(aggs, t) for t in dict.fromkeys(a.event_type for a in aggs)}
    nothing: tuple[Input, ...] = (None,) * len(aggs)

    def contributions(event: Event, key: str) -> tuple[Input, ...]:
        plan = plans.get(type(event))
        return nothing if plan is None else plan(event, key)

    return contributions


def _key_getter(spec: SourceField) -> Callable[[Event], list[str]]:
    get = spec.get
    if spec.item:
        return lambda event: list(
            dict.fromkeys(str(v) for v in map(get, event.items) if v is not None)  # type: ignore[union-attr]
        )
    return lambda event: [] if (v := get(event)) is None else [str(v)]


def entity_key_function(entity: str) -> Callable[[Event], list[str]]:
    """Return :func:`entity_keys` for ``entity`` with its field looked up once per event type.

    Examples
    --------
    >>> e = CustomerEvent(event_id="e1", customer_id="c1", event_time=1_700_000_000_000, type="search")
    >>> entity_key_function("customer")(e), entity_key_function("product")(e)
    (['c1'], [])
    """
    getters: dict[type, Callable[[Event], list[str]]] = {}
    for event_type, source in ((Order, "orders"), (CustomerEvent, "customer_events")):
        field = entity_key_field(entity, source)
        if field is None:
            getters[event_type] = lambda event: []
            continue
        getters[event_type] = _key_getter(FIELDS[source][field])

    def keys(event: Event) -> list[str]:
        getter = getters.get(type(event))
        if getter is None:
            source_of(event)  # raises, naming the type
        return getter(event)  # type: ignore[misc]

    return keys


#: Request-time features: ``(name, dtype, description)``, computed from the order being scored.
RAW_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("order_total", "float", "the order's total"),
    ("account_age_days", "float", "days from account creation to the order (-1.0 when unknown)"),
    ("country_mismatch", "int", "1 when billing and shipping countries differ, else 0"),
    ("payment_method", "str", "payment method (categorical)"),
    ("channel", "str", "sales channel (categorical)"),
    ("n_items", "float", "units in the order (sum of quantities)"),
    ("n_lines", "float", "order lines"),
)


def raw_features(order: Order) -> dict[str, float | str]:
    """Request-time features of the order being scored (no store involved).

    Examples
    --------
    >>> from hanzo.ml.schemas.events import OrderItem
    >>> o = Order(order_id="o1", customer_id="c1", event_time=1_700_000_000_000,
    ...           items=[OrderItem(product_id="p1", category="books", quantity=2, unit_price=10.0)],
    ...           total=20.0, currency="EUR", payment_method="card", billing_country="DE",
    ...           shipping_country="FR", channel="web", account_created_time=1_699_136_000_000)
    >>> raw_features(o)
    {'order_total': 20.0, 'account_age_days': 10.0, 'country_mismatch': 1.0, 'payment_method': 'card', 'channel': 'web', 'n_items': 2.0, 'n_lines': 1.0}
    """  # noqa: E501
    age = _order_age_days(order)
    return {
        "order_total": float(order.total),
        "account_age_days": -1.0 if age is None else age,
        "country_mismatch": float(order.billing_country != order.shipping_country),
        "payment_method": order.payment_method,
        "channel": order.channel,
        "n_items": float(sum(i.quantity for i in order.items)),
        "n_lines": float(len(order.items)),
    }
