"""The in-memory online store: the same semantics as the Redis store, in a Python dict.

It is a real implementation (unit tests and notebooks use it), not a mock: the same fence, dedupe,
lateness, bucket, retention and TTL rules as ``features/entity.lua``, written in Python. Wall-clock TTLs
(entity state, dedupe marks) are checked against the wall time the caller passes in. Not thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanzo.ml.features.backend import EntityPlan, EntityUpdate, OnlineStore, Status, Values
from hanzo.ml.features.definitions import Aggregate
from hanzo.ml.features.windows import DISTINCT_LIMIT, bucket_index, expired_below, is_late, window_range

logger = logging.getLogger(__name__)

# Cell of one bucket (or of a lifetime aggregate), by kind: count/sum/max/min/time_since_last -> float,
# mean -> [sum, n], last -> (event ms, value), distinct_count -> list of values (insertion order).
Cell = Any


@dataclass
class _Entity:
    cells: dict[str, dict[int | None, Cell]] = field(default_factory=dict)
    max_t: int | None = None
    last_t: int | None = None
    wall_ms: int = 0
    late: int = 0
    expires_at: int = 0
    fence: dict[str, int] = field(default_factory=dict)


@dataclass
class _Acc:
    n: float = 0.0
    s: float = 0.0
    m: float | None = None
    x: float | None = None
    lt: float | None = None
    lv: float | None = None
    d: set[str] = field(default_factory=set)


def _fold(kind: str, acc: _Acc, cell: Cell) -> None:
    if kind == "count":
        acc.n += cell
    elif kind == "sum":
        acc.s += cell
    elif kind == "mean":
        acc.s += cell[0]
        acc.n += cell[1]
    elif kind == "min":
        acc.m = cell if acc.m is None else min(acc.m, cell)
    elif kind in ("max", "time_since_last"):
        acc.x = cell if acc.x is None else max(acc.x, cell)
    elif kind == "last":
        if acc.lt is None or cell[0] > acc.lt:
            acc.lt, acc.lv = cell
    else:
        acc.d.update(cell)


def _value(kind: str, acc: _Acc, t: int) -> float | None:
    if kind == "count":
        return acc.n
    if kind == "sum":
        return acc.s
    if kind == "distinct_count":
        return float(len(acc.d))
    if kind == "mean":
        return acc.s / acc.n if acc.n > 0 else None
    if kind == "min":
        return acc.m
    if kind == "last":
        return acc.lv
    if acc.x is None:
        return None
    return acc.x if kind == "max" else max(0.0, t - acc.x) / 1000


def _scan(plan: EntityPlan, state: _Entity, t: int) -> list[_Acc]:
    accs = []
    for a in plan.aggregates:
        acc = _Acc()
        cells = state.cells.get(a.name, {})
        if a.bucket_ms == 0:
            if None in cells:
                _fold(a.aggregation, acc, cells[None])
        else:
            lo, hi = window_range(t, a.bucket_ms, a.n_buckets)
            for i, cell in cells.items():
                if i is not None and lo < i <= hi:
                    _fold(a.aggregation, acc, cell)
        accs.append(acc)
    return accs


def _write(a: Aggregate, cells: dict[int | None, Cell], idx: int | None, acc: _Acc, inp: Any, t: int) -> None:
    kind, cur = a.aggregation, cells.get(idx)
    if kind == "count":
        cells[idx] = (cur or 0.0) + 1.0
        acc.n += 1.0
    elif kind == "sum":
        cells[idx] = (cur or 0.0) + inp
        acc.s += inp
    elif kind == "mean":
        s, n = inp
        cells[idx] = [(cur or [0.0, 0.0])[0] + s, (cur or [0.0, 0.0])[1] + n]
        acc.s += s
        acc.n += n
    elif kind == "min":
        cells[idx] = inp if cur is None else min(cur, inp)
        acc.m = inp if acc.m is None else min(acc.m, inp)
    elif kind == "max":
        cells[idx] = inp if cur is None else max(cur, inp)
        acc.x = inp if acc.x is None else max(acc.x, inp)
    elif kind == "last":
        if cur is None or t >= cur[0]:
            cells[idx] = (float(t), inp)
        if acc.lt is None or t >= acc.lt:
            acc.lt, acc.lv = float(t), inp
    elif kind == "distinct_count":
        members = list(cur or [])
        for m in sorted(inp):
            if m not in members and len(members) < DISTINCT_LIMIT:
                members.append(m)
                acc.d.add(m)
        cells[idx] = members
    else:  # time_since_last
        cells[idx] = float(t) if cur is None else max(cur, float(t))


class InMemoryOnlineStore(OnlineStore):
    """Windowed feature state in a dict, with the semantics of the Redis store.

    Examples
    --------
    >>> from hanzo.ml.features import FeatureStore, EventRecord
    >>> from hanzo.ml.features.definitions import Aggregate
    >>> from hanzo.ml.schemas.events import CustomerEvent
    >>> tickets = Aggregate(name="tickets_7d", entity="customer", source="customer_events",
    ...                     aggregation="count", window="7d", where='type == "support_ticket"')
    >>> store = FeatureStore([tickets], backend=InMemoryOnlineStore(), clock=lambda: 1_700_000_000.0)
    >>> ev = CustomerEvent(event_id="e1", customer_id="c1", event_time=1_700_000_000_000,
    ...                    type="support_ticket")
    >>> [(r.status, r.features) for r in store.apply_batch("customer", [EventRecord(ev, "events", 0, 7)])]
    [('applied', {'tickets_7d': 1.0})]
    >>> store.apply_batch("customer", [EventRecord(ev, "events", 0, 7)])[0].status
    'fenced'
    """

    def __init__(self) -> None:
        self._plans: dict[str, EntityPlan] = {}
        self._entities: dict[tuple[str, str], _Entity] = {}
        self._marks: dict[tuple[str, str, str], int] = {}

    def bind(self, plans: Sequence[EntityPlan]) -> None:
        """Remember the plans."""
        for plan in plans:
            self._plans[plan.entity] = plan

    def _get(self, entity: str, entity_id: str, wall_ms: int) -> _Entity | None:
        state = self._entities.get((entity, entity_id))
        if state is not None and state.expires_at <= wall_ms:
            del self._entities[entity, entity_id]
            return None
        return state

    def apply(self, entity: str, updates: Iterable[EntityUpdate]) -> list[tuple[Status, Values]]:
        """Apply each update atomically, in order."""
        plan = self._plans[entity]
        return [self._apply_one(plan, u) for u in updates]

    def _apply_one(self, plan: EntityPlan, u: EntityUpdate) -> tuple[Status, Values]:
        key = (plan.entity, u.entity_id)
        existing = self._get(plan.entity, u.entity_id, u.wall_ms)
        state = existing if existing is not None else _Entity()
        mark = (plan.entity, u.entity_id, u.event_id)
        status: Status = "applied"
        if u.fence is not None and state.fence.get(u.fence, -1) >= u.offset:
            status = "fenced"
        elif self._marks.get(mark, 0) > u.wall_ms:
            status = "duplicate"
        elif is_late(u.event_time, state.max_t, plan.allowed_lateness_ms):
            status = "late"
        t = u.event_time
        accs = _scan(plan, state, t)
        values: Values = []
        if status != "applied":
            values = [_value(a.aggregation, acc, t) for a, acc in zip(plan.aggregates, accs, strict=True)]
            if status == "late":
                state.late += 1
        else:
            new_max = t if state.max_t is None else max(state.max_t, t)
            for a, acc, inp in zip(plan.aggregates, accs, u.inputs, strict=True):
                tsl = _value(a.aggregation, acc, t) if a.aggregation == "time_since_last" else None
                cells = state.cells.setdefault(a.name, {})
                if inp is not None:
                    idx = bucket_index(t, a.bucket_ms) if a.bucket_ms else None
                    _write(a, cells, idx, acc, inp, t)
                if a.bucket_ms:
                    dead = expired_below(new_max, plan.allowed_lateness_ms, a.bucket_ms, a.n_buckets)
                    for i in [i for i in cells if i is not None and i <= dead]:
                        del cells[i]
                values.append(tsl if a.aggregation == "time_since_last" else _value(a.aggregation, acc, t))
            state.max_t, state.last_t, state.wall_ms = new_max, t, u.wall_ms
            self._marks[mark] = u.wall_ms + plan.mark_ttl_ms
        if status != "fenced":
            if u.fence is not None:
                state.fence[u.fence] = u.offset
            state.expires_at = u.wall_ms + plan.entity_ttl_ms
            self._entities[key] = state
        return status, values

    def read(
        self, entity: str, ids: Sequence[str], as_of_ms: int | None, wall_ms: int
    ) -> list[Values | None]:
        """Values of each entity as of ``as_of_ms`` (default: its latest event time)."""
        plan = self._plans[entity]
        out: list[Values | None] = []
        for entity_id in ids:
            state = self._get(entity, entity_id, wall_ms)
            if state is None or state.max_t is None:
                out.append(None)
                continue
            t = state.max_t if as_of_ms is None else as_of_ms
            accs = _scan(plan, state, t)
            out.append([_value(a.aggregation, acc, t) for a, acc in zip(plan.aggregates, accs, strict=True)])
        return out

    def last_update(self, entity: str, entity_id: str, wall_ms: int) -> tuple[int, int] | None:
        """``(largest event time, wall time of the last write)`` in ms."""
        state = self._get(entity, entity_id, wall_ms)
        if state is None or state.max_t is None:
            return None
        return state.max_t, state.wall_ms

    def expire_marks(self, wall_ms: int) -> int:
        """Drop dedupe marks whose TTL has passed (Redis does this by itself); returns how many."""
        dead = [k for k, until in self._marks.items() if until <= wall_ms]
        for k in dead:
            del self._marks[k]
        return len(dead)
