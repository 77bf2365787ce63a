"""FeatureStore: windowed aggregates by event time, derived features, one round trip per batch.

The scoring path calls :meth:`FeatureStore.apply_batch`; every result carries the entity's features as of
the event's own time, so scoring needs no second read. Anything else reads with
:meth:`FeatureStore.get_features` (one entity, one round trip) or :meth:`FeatureStore.get_features_batch`.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features.backend import ApplyResult, EntityPlan, EntityUpdate, EventRecord, OnlineStore
from hanzo.ml.features.definitions import (
    RAW_FEATURES,
    Aggregate,
    check_definitions,
    close_matches,
    entity_key_function,
    input_functions,
    load_definitions,
)
from hanzo.ml.features.memory_store import InMemoryOnlineStore
from hanzo.ml.features.redis_store import RedisOnlineStore
from hanzo.ml.features.windows import DAY_MS, HOUR_MS

logger = logging.getLogger(__name__)

#: Default allowed lateness: events up to an hour older than their entity's latest event are applied.
DEFAULT_ALLOWED_LATENESS_MS = HOUR_MS
#: Default TTL of an idle entity's keys (lifetime values included), refreshed on every write.
DEFAULT_ENTITY_TTL_MS = 400 * DAY_MS

#: ``f(base_features) -> value`` or ``f(<entity>_id) -> value``.
FeatureFunction = Callable[..., float | None]
F = TypeVar("F", bound=FeatureFunction)


@dataclass(frozen=True)
class FeatureInfo:
    """What :meth:`FeatureStore.list_features` says about one feature.

    ``kind`` is ``aggregate`` (kept in the store), ``derived`` (``@store.feature``) or ``request``
    (computed from the order being scored by :func:`features.raw_features`).
    """

    name: str
    entity: str
    kind: str
    aggregation: str
    window: str | None
    precision: str | None
    description: str
    dtype: str


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed by a Python function: from base features of one entity, or from its id.

    ``by_id`` functions take the entity's id (``def clv(customer_id: str) -> float``) and compute the value
    themselves, e.g. from a system of record; the others take a mapping of the base features they read.
    """

    name: str
    entity: str
    function: Callable[..., Any]
    depends_on: tuple[str, ...]
    description: str
    dtype: str
    by_id: bool = False


class _Dependencies(dict[str, float]):
    """The mapping a derived feature receives; reading an undeclared name says so."""

    def __init__(self, feature: str, values: dict[str, float]) -> None:
        super().__init__(values)
        self.feature = feature

    def __missing__(self, key: str) -> float:
        msg = f"derived feature {self.feature!r} read {key!r}, not among its dependencies {sorted(self)}"
        raise ConfigError(msg)


def names_read(fn: Callable[..., Any]) -> list[str]:
    """Return the string keys a function reads from its argument (``f["x"]``, ``f.get("x")``), in order.

    Examples
    --------
    >>> def clv(f):
    ...     return f["lifetime_spend"] + f.get("spend_24h", 0)
    >>> names_read(clv)
    ['lifetime_spend', 'spend_24h']
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    node = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == fn.__name__),
        None,
    )
    if node is None or not node.args.args:
        return []
    param = node.args.args[0].arg
    found: list[str] = []
    for n in ast.walk(node):
        key = None
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == param:
            key = n.slice
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "get"
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == param
            and n.args
        ):
            key = n.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value not in found:
            found.append(key.value)
    return found


@dataclass(frozen=True)
class _BatchQuery:
    """What a batched read of ``names`` needs: the aggregates to compute and how to assemble rows."""

    entity: str
    names: list[str]
    derived: list[DerivedFeature]
    need: list[str]
    picked: list[tuple[int, str, float | None]]


class FeatureStore:
    """Declarative windowed features over an online store, with derived features.

    Parameters
    ----------
    definitions
        The aggregates; default: :func:`features.load_definitions` (the shipped ``config/features.yaml``).
    backend
        :class:`features.RedisOnlineStore` or :class:`features.InMemoryOnlineStore` (default).
    allowed_lateness_ms
        Events older than their entity's latest event time minus this are ``late`` and not applied.
    entity_ttl_ms
        TTL of an idle entity's state, refreshed on every write; at least the longest window plus the
        lateness. Lifetime values of an entity idle that long are forgotten.
    clock
        Wall clock in seconds (freshness, TTLs); tests pass their own.

    Examples
    --------
    >>> from hanzo.ml.schemas.events import Order, OrderItem
    >>> store = FeatureStore(clock=lambda: 1_700_000_100.0)
    >>> @store.feature
    ... def customer_lifetime_value(f):
    ...     return f["lifetime_spend"]
    >>> def order(i, total, t):
    ...     return Order(order_id=f"o{i}", customer_id="c1", event_time=t, total=total, currency="EUR",
    ...                  items=[OrderItem(product_id="p1", category="books", quantity=1, unit_price=total)],
    ...                  payment_method="card", billing_country="DE", shipping_country="DE", channel="web")
    >>> t0 = 1_700_000_000_000
    >>> records = [EventRecord(order(i, 10.0 * (i + 1), t0 + i * 60_000), "orders", 0, i) for i in range(3)]
    >>> results = store.apply_batch("customer", records)
    >>> [r.status for r in results], results[-1].features["orders_1h"], results[-1].features["spend_24h"]
    (['applied', 'applied', 'applied'], 3.0, 60.0)
    >>> results[-1].features["seconds_since_last_order"]
    60.0
    >>> store.get_features(customer_id="c1", features=["orders_24h", "customer_lifetime_value"])
    {'orders_24h': 3.0, 'customer_lifetime_value': 60.0}
    >>> store.get_features(customer_id="nobody", features=["orders_24h", "mean_order_value_30d"])
    {'orders_24h': 0.0, 'mean_order_value_30d': None}
    """

    def __init__(
        self,
        definitions: Sequence[Aggregate] | None = None,
        backend: OnlineStore | None = None,
        allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
        entity_ttl_ms: int = DEFAULT_ENTITY_TTL_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.definitions = definitions
        self.backend = backend
        self.allowed_lateness_ms = allowed_lateness_ms
        self.entity_ttl_ms = entity_ttl_ms
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        aggs = check_definitions(self.definitions if self.definitions is not None else load_definitions())
        if self.allowed_lateness_ms < 0:
            msg = f"allowed_lateness_ms={self.allowed_lateness_ms} is negative; give 0 or more"
            raise ConfigError(msg)
        windows = [a.window_ms for a in aggs if a.window_ms is not None]
        mark_ttl = (max(windows) if windows else DAY_MS) + self.allowed_lateness_ms
        if self.entity_ttl_ms < mark_ttl:
            msg = (
                f"entity_ttl_ms={self.entity_ttl_ms} is shorter than the longest window plus the lateness "
                f"({mark_ttl} ms); raise it"
            )
            raise ConfigError(msg)
        self._backend: OnlineStore = self.backend if self.backend is not None else InMemoryOnlineStore()
        self._aggregates: dict[str, Aggregate] = {a.name: a for a in aggs}
        self._plans: dict[str, EntityPlan] = {}
        for entity in dict.fromkeys(a.entity for a in aggs):
            mine = tuple(a for a in aggs if a.entity == entity)
            self._plans[entity] = EntityPlan(
                entity, mine, self.allowed_lateness_ms, self.entity_ttl_ms, mark_ttl
            )
        self._inputs = {e: input_functions(p.aggregates) for e, p in self._plans.items()}
        self._keys = {e: entity_key_function(e) for e in self._plans}
        self._derived: dict[str, DerivedFeature] = {}
        self.status_counts: Counter[str] = Counter()
        self._last_write_ms: dict[str, int] = {}
        self._backend.bind(list(self._plans.values()))

    # -- derived features -------------------------------------------------------------------------

    @overload
    def feature(self, fn: F) -> F: ...

    @overload
    def feature(
        self,
        fn: F,
        *,
        depends_on: Sequence[str] | None = None,
        name: str | None = None,
        description: str = "",
        dtype: str = "float",
    ) -> F: ...

    @overload
    def feature(
        self,
        *,
        depends_on: Sequence[str] | None = None,
        name: str | None = None,
        description: str = "",
        dtype: str = "float",
    ) -> Callable[[FeatureFunction], FeatureFunction]: ...

    def feature(
        self,
        fn: Any = None,
        *,
        depends_on: Sequence[str] | None = None,
        name: str | None = None,
        description: str = "",
        dtype: str = "float",
    ) -> Any:
        """Register a derived feature, bare (``@store.feature``) or with arguments.

        The function receives a mapping of the base features it depends on (of one entity) and returns
        a number. Dependencies are ``depends_on`` when given, else the string keys the function's source
        reads from its argument (``f["x"]``, ``f.get("x")``). When a dependency is ``None`` (e.g. a mean
        of an empty window) the derived value is ``None`` and the function is not called.

        A function whose one parameter is an entity id (``def clv(customer_id: str) -> float``) is called
        with the id instead, and computes the value itself (from a system of record, say).
        """

        def register(func: FeatureFunction) -> FeatureFunction:
            self._register(func, depends_on, name, description, dtype)
            return func

        return register(fn) if fn is not None else register

    def _register(
        self,
        fn: FeatureFunction,
        depends_on: Sequence[str] | None,
        name: str | None,
        description: str,
        dtype: str,
    ) -> None:
        fname = name or fn.__name__
        if fname in self._aggregates or fname in self._derived:
            msg = f"feature {fname!r} is already defined; give the derived feature another name"
            raise ConfigError(msg)
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        id_entity = self._id_parameter_entity(fn) if depends_on is None else None
        if id_entity is not None:
            self._derived[fname] = DerivedFeature(fname, id_entity, fn, (), doc, dtype, by_id=True)
            return
        deps = tuple(depends_on) if depends_on is not None else tuple(names_read(fn))
        if not deps:
            msg = f"derived feature {fname!r}: no dependencies found in its source; pass depends_on=[...]"
            raise ConfigError(msg)
        for d in deps:
            if d not in self._aggregates:
                msg = (
                    f"derived feature {fname!r} depends on unknown feature {d!r}"
                    f"{close_matches(d, list(self._aggregates))}"
                )
                raise ConfigError(msg)
        entities = {self._aggregates[d].entity for d in deps}
        if len(entities) > 1:
            msg = f"derived feature {fname!r} mixes entities {sorted(entities)}; give it one entity"
            raise ConfigError(msg)
        self._derived[fname] = DerivedFeature(fname, entities.pop(), fn, deps, doc, dtype)

    def _id_parameter_entity(self, fn: Callable[..., Any]) -> str | None:
        """The entity of a function whose one parameter is an entity id (``customer_id``), else ``None``."""
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            return None
        if len(params) != 1 or not params[0].endswith("_id"):
            return None
        entity = params[0][: -len("_id")]
        if entity not in self._plans:
            msg = (
                f"feature {fn.__name__!r} takes {params[0]!r}, but {entity!r} is not an entity; "
                f"name the parameter after one of {sorted(self._plans)} (e.g. customer_id)"
            )
            raise ConfigError(msg)
        return entity

    # -- writes -------------------------------------------------------------------------------------

    def apply_batch(self, entity: str, records: Sequence[EventRecord]) -> list[ApplyResult]:
        """Apply events to ``entity``'s aggregates in one round trip; return each one's features.

        One result per (record, entity key) in record order: one per record for ``customer``, one per
        product contained for ``product``. Status ``applied``, ``duplicate`` (event id seen before),
        ``fenced`` (offset at or below the last one processed for its topic/partition) or ``late``.
        """
        plan = self._plan(entity)
        wall_ms = int(self.clock() * 1000)
        inputs, keys_of = self._inputs[entity], self._keys[entity]
        updates: list[EntityUpdate] = []
        index: list[int] = []

        def make() -> Iterator[EntityUpdate]:  # consumed by the backend as it sends
            for i, record in enumerate(records):
                event = record.event
                fence = record.fence
                offset = record.offset if fence is not None and record.offset is not None else -1
                for key in keys_of(event):
                    contributions = inputs(event, key)
                    u = EntityUpdate(
                        key, event.event_id, event.event_time, fence, offset, contributions, wall_ms
                    )
                    updates.append(u)
                    index.append(i)
                    yield u

        replies = self._backend.apply_stream(entity, make())
        derived = [d for d in self._derived.values() if d.entity == entity]
        names = [a.name for a in plan.aggregates]
        fills = [(a.name, a.default) for a in plan.aggregates if a.default is not None]
        out = []
        for j, (status, values) in enumerate(replies):  # each as soon as Redis answers its call
            i, u = index[j], updates[j]
            self.status_counts[status] += 1
            if status == "applied":
                self._last_write_ms[entity] = wall_ms
            features = dict(zip(names, values, strict=True))
            for name, default in fills:
                if features[name] is None:
                    features[name] = default
            if derived:
                features.update(self._derive(derived, features, u.entity_id))
            out.append(ApplyResult(i, u.entity_id, u.event_id, status, features))
        return out

    # -- reads --------------------------------------------------------------------------------------

    def get_features(
        self,
        features: Sequence[str] | None = None,
        *,
        as_of_ms: int | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        **ids: str,
    ) -> dict[str, float | None]:
        """Read one entity's features as of ``as_of_ms`` (default: its latest event time), one round trip.

        Name the entity as ``<entity>_id="..."`` (``customer_id="c1"``) or ``entity=..., entity_id=...``.
        ``features=None`` gives every feature of the entity. An unknown entity id gives the defaults:
        0 for counts, sums and distinct counts, ``-1.0`` for ``time_since_last``, ``None`` otherwise
        (or the definition's ``default``).
        """
        if ids:
            if len(ids) != 1 or entity is not None or entity_id is not None:
                msg = f"name one entity, as <entity>_id='...' or entity=/entity_id=; got {sorted(ids)}"
                raise ConfigError(msg)
            ((kw, entity_id),) = ids.items()
            if not kw.endswith("_id"):
                msg = f"unknown argument {kw!r}; name the entity as <entity>_id, e.g. customer_id='c1'"
                raise ConfigError(msg)
            entity = kw[: -len("_id")]
        if entity is None or entity_id is None:
            msg = "name the entity, e.g. get_features(customer_id='c1')"
            raise ConfigError(msg)
        return self.get_features_batch(entity, [entity_id], features=features, as_of_ms=as_of_ms)[0]

    def get_features_batch(
        self,
        entity: str,
        ids: Sequence[str],
        features: Sequence[str] | None = None,
        as_of_ms: int | None = None,
    ) -> list[dict[str, float | None]]:
        """Features of many entities of one kind, in one round trip; one dict per id, in order.

        Only the aggregates named, and those the named derived features read, are computed (with the
        Redis backend they are the only fields fetched).
        """
        query = self._batch_query(entity, features)
        wall_ms = int(self.clock() * 1000)
        if isinstance(self._backend, RedisOnlineStore):
            # Redis computes only what the names need: the aggregates asked and those derived ones read
            rows = self._backend.read(entity, list(ids), as_of_ms, wall_ms, aggregates=query.need)
        else:
            rows = self._backend.read(entity, list(ids), as_of_ms, wall_ms)
        return self._batch_rows(query, rows, ids)

    def async_reader(self) -> AsyncFeatureReader | None:
        """A reader of :meth:`get_features_batch` over ``redis.asyncio`` for the running event loop.

        ``None`` unless the backend is a :class:`RedisOnlineStore` given an ``async_factory``. The
        caller closes it (``await reader.aclose()``).
        """
        backend = self._backend
        if not isinstance(backend, RedisOnlineStore) or backend.async_factory is None:
            return None
        return AsyncFeatureReader(self, backend, backend.async_factory())

    def _batch_query(self, entity: str, features: Sequence[str] | None) -> _BatchQuery:
        plan = self._plan(entity)
        names = self._check_features(entity, features)
        derived = [self._derived[n] for n in names if n in self._derived]
        need = {n for n in names if n in self._aggregates} | {x for d in derived for x in d.depends_on}
        picked = [(p, a.name, a.default) for p, a in enumerate(plan.aggregates) if a.name in need]
        return _BatchQuery(entity, names, derived, sorted(need), picked)

    def _batch_rows(
        self, query: _BatchQuery, rows: Sequence[Sequence[float | None] | None], ids: Sequence[str]
    ) -> list[dict[str, float | None]]:
        picked, derived, names = query.picked, query.derived, query.names
        defaults = {name: d for _, name, d in picked}
        out = []
        for entity_id, values in zip(ids, rows, strict=True):
            if values is None:
                base = dict(defaults)
            else:
                base = {name: d if values[p] is None else values[p] for p, name, d in picked}
            if derived:
                base.update(self._derive(derived, base, entity_id))
            out.append({n: base[n] for n in names})
        return out

    def freshness(self, entity: str, entity_id: str) -> float | None:
        """Seconds since the entity's state was last written (wall clock), ``None`` if it is unknown."""
        self._plan(entity)
        now_ms = int(self.clock() * 1000)
        last = self._backend.last_update(entity, entity_id, now_ms)
        return None if last is None else max(0.0, (now_ms - last[1]) / 1000)

    def max_staleness(self, entity: str, ids: Sequence[str]) -> float | None:
        """Largest :meth:`freshness` among ``ids`` (one round trip); unknown ids are skipped.

        ``None`` when no id is known. Meant for a freshness gauge: pass the ids of the last batch or a
        sample of recently scored entities.
        """
        self._plan(entity)
        now_ms = int(self.clock() * 1000)
        walls = [w[1] for w in self._backend.last_updates(entity, list(ids), now_ms) if w is not None]
        return max(0.0, (now_ms - min(walls)) / 1000) if walls else None

    def seconds_since_last_write(self, entity: str) -> float | None:
        """Seconds since this store last applied an event to ``entity`` (no I/O); ``None``: not yet."""
        self._plan(entity)
        last = self._last_write_ms.get(entity)
        return None if last is None else max(0.0, self.clock() - last / 1000)

    @property
    def entities(self) -> tuple[str, ...]:
        """The entities that have aggregates, in definition order."""
        return tuple(self._plans)

    def list_features(self) -> list[FeatureInfo]:
        """Every feature: aggregates, derived features, then request-time features of orders."""
        out = [
            FeatureInfo(
                a.name, a.entity, "aggregate", a.aggregation, a.window, a.precision, a.description, a.dtype
            )
            for a in self._aggregates.values()
        ]
        out += [
            FeatureInfo(d.name, d.entity, "derived", "derived", None, None, d.description, d.dtype)
            for d in self._derived.values()
        ]
        out += [FeatureInfo(n, "order", "request", "raw", None, None, desc, t) for n, t, desc in RAW_FEATURES]
        return out

    # -- helpers ------------------------------------------------------------------------------------

    def _plan(self, entity: str) -> EntityPlan:
        plan = self._plans.get(entity)
        if plan is None:
            msg = f"no feature is defined for entity {entity!r}{close_matches(entity, list(self._plans))}"
            raise ConfigError(msg)
        return plan

    def _check_features(self, entity: str, features: Sequence[str] | None) -> list[str]:
        mine = [a.name for a in self._plans[entity].aggregates]
        mine += [d.name for d in self._derived.values() if d.entity == entity]
        if features is None:
            return mine
        known = list(self._aggregates) + list(self._derived)
        for name in features:
            if name in mine:
                continue
            if name in known:
                other = (
                    self._aggregates[name].entity if name in self._aggregates else self._derived[name].entity
                )
                msg = f"feature {name!r} belongs to entity {other!r}, not {entity!r}"
            elif name in {r[0] for r in RAW_FEATURES}:
                msg = f"feature {name!r} comes from the order being scored; use features.raw_features(order)"
            else:
                msg = f"unknown feature {name!r}{close_matches(name, known)}"
            raise ConfigError(msg)
        return list(features)

    @staticmethod
    def _derive(
        derived: Sequence[DerivedFeature], base: Mapping[str, float | None], entity_id: str
    ) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for d in derived:
            if d.by_id:
                try:
                    value = d.function(entity_id)
                except Exception as exc:
                    exc.add_note(f"while computing feature {d.name!r} of {d.entity} {entity_id!r}")
                    raise
                out[d.name] = None if value is None else float(value)
                continue
            deps = {n: base[n] for n in d.depends_on}
            if any(v is None for v in deps.values()):
                out[d.name] = None
                continue
            try:
                out[d.name] = float(d.function(_Dependencies(d.name, deps)))  # type: ignore[arg-type]
            except Exception as exc:
                exc.add_note(f"while computing derived feature {d.name!r}")
                raise
        return out


class AsyncFeatureReader:
    """:meth:`FeatureStore.get_features_batch` through ``redis.asyncio``, for one event loop.

    The event loop keeps running while Redis computes the features, so a server can score one batch
    while the next one's features are read. Made by :meth:`FeatureStore.async_reader`; close it with
    :meth:`aclose` on the loop that used it.

    Examples
    --------
    >>> FeatureStore().async_reader() is None  # the in-memory store has nothing to wait for
    True
    """

    def __init__(self, store: FeatureStore, backend: RedisOnlineStore, client: Any) -> None:
        self.store = store
        self.backend = backend
        self.client = client

    async def get_features_batch(
        self,
        entity: str,
        ids: Sequence[str],
        features: Sequence[str] | None = None,
        as_of_ms: int | None = None,
    ) -> list[dict[str, float | None]]:
        """The same values as :meth:`FeatureStore.get_features_batch`, awaited."""
        query = self.store._batch_query(entity, features)
        wall_ms = int(self.store.clock() * 1000)
        rows = await self.backend.read_async(
            self.client, entity, list(ids), as_of_ms, wall_ms, aggregates=query.need
        )
        return self.store._batch_rows(query, rows, ids)

    async def aclose(self) -> None:
        """Close the asyncio client (its connections)."""
        await self.client.aclose()
