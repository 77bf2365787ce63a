"""Group the aggregates of an entity into hash fields and render its Lua scripts from the definitions.

The template ``features/entity.lua`` holds the window code. :func:`groups` decides the state layout: the
windowed numeric aggregates that every event feeds together (same source, filter, field presence,
bucket size and window length) share one field, a bucket list with multi-value cells; every numeric
lifetime aggregate shares the lifetime field; each ``distinct_count`` keeps its own field. Rendering
fills in the groups (as literal tables, built once per script call: an EVAL script keeps nothing between
calls), the straight-line code of each group for an applied event (:mod:`features.luagen`) and the
entity's time rules, then appends the entry point: ``update`` (a list of events in order,
each with its fence, dedupe, lateness, every group, fence and mark; each entity hash read once and
written once per call; returns each event's values as of its time) or ``read`` (values as of a time,
read-only; of the aggregates named by position, or all; only their groups are fetched). Arguments and
replies are described in :mod:`features.redis_store`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from hanzo.ml.features.backend import EntityPlan
from hanzo.ml.features.definitions import FIELDS, Aggregate
from hanzo.ml.features.luagen import WIDE, apply, decode, inputs, layout
from hanzo.ml.features.windows import DISTINCT_LIMIT

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "entity.lua"


#: Computed order fields that always give a value (the schema requires ``items`` and a ``total``).
_ALWAYS = {("orders", "n_items"), ("orders", "n_lines")}


@dataclass(frozen=True)
class Script:
    """A rendered script and its SHA1 (what ``EVALSHA`` takes)."""

    source: str
    sha: str


@dataclass(frozen=True)
class Group:
    """Aggregates of one entity kept in one hash field.

    ``kind`` is ``w`` (windowed numeric), ``l`` (lifetime numeric) or ``d`` (one ``distinct_count``);
    ``members`` are positions in the plan, ``kinds`` their aggregations.
    """

    kind: Literal["w", "l", "d"]
    field: str
    members: tuple[int, ...]
    kinds: tuple[str, ...]
    bucket_ms: int
    n_buckets: int

    @property
    def input_width(self) -> int:
        """Doubles of one event's inputs (``mean``: sum and n; the others one)."""
        return sum(2 if k == "mean" else 1 for k in self.kinds)


def always_present(a: Aggregate) -> bool:
    """Whether every event of ``a``'s source that passes its filter gives ``a`` an input.

    ``count``/``time_since_last`` read no field; item fields have values because an order holds at
    least one line; a required, non-optional field of the event always has one.

    Examples
    --------
    >>> spend = Aggregate(name="s", entity="customer", source="orders", field="total",
    ...                   aggregation="sum", window="24h")
    >>> age = Aggregate(name="a", entity="customer", source="orders", field="account_age_days",
    ...                 aggregation="max", window="24h")
    >>> always_present(spend), always_present(age)
    (True, False)
    """
    if a.field is None or (a.source, a.field) in _ALWAYS:
        return True
    if FIELDS[a.source][a.field].item:
        return a.source == "orders"  # an order holds at least one line; line attributes are required
    info = a.event_type.model_fields.get(a.field)
    if info is None or not info.is_required():
        return False
    return "None" not in str(info.annotation)


def groups(plan: EntityPlan) -> tuple[Group, ...]:
    """The hash fields of ``plan``'s entity, in the order of their first member.

    Examples
    --------
    >>> kw = dict(entity="customer", source="orders", window="24h")
    >>> aggs = (Aggregate(name="n", aggregation="count", **kw),
    ...         Aggregate(name="s", aggregation="sum", field="total", **kw),
    ...         Aggregate(name="life", aggregation="sum", field="total", entity="customer", source="orders"))
    >>> [(g.field, g.members) for g in groups(EntityPlan("customer", aggs, 0, 86_400_000, 86_400_000))]
    [('n+s', (0, 1)), ('life', (2,))]
    """
    keyed: dict[tuple[object, ...], list[int]] = {}
    for p, a in enumerate(plan.aggregates):
        key: tuple[object, ...]
        if a.aggregation == "distinct_count":
            key = ("d", a.name)
        elif a.bucket_ms == 0:
            key = ("l",)
        else:
            presence = "always" if always_present(a) else a.field
            key = ("w", a.source, a.where, presence, a.bucket_ms, a.n_buckets)
        keyed.setdefault(key, []).append(p)
    out = []
    for key, members in keyed.items():
        aggs = [plan.aggregates[p] for p in members]
        kind: Literal["w", "l", "d"] = key[0]  # type: ignore[assignment]
        out.append(
            Group(
                kind,
                "+".join(a.name for a in aggs),
                tuple(members),
                tuple(a.aggregation for a in aggs),
                aggs[0].bucket_ms,
                aggs[0].n_buckets,
            )
        )
    return tuple(out)


def _lua_list(items: list[str]) -> str:
    return "{" + ", ".join(items) + "}"


def _group_table(g: Group) -> str:
    """The Lua literal of one group (formats and offsets precomputed)."""
    names = [f'"{k}"' for k in g.kinds]
    out = [str(p + 1) for p in g.members]
    base = f'kind = "{g.kind}", f = "{g.field}", b = {g.bucket_ms}, nb = {g.n_buckets}, m = {len(g.kinds)}'
    base += f", k = {_lua_list(names)}, out = {_lua_list(out)}"
    if g.kind == "d":
        return "  {" + base + "},"
    lay = layout(g.kind, g.kinds)
    off, ioff, hpos = ([str(x) for x in xs] for xs in (lay.off, lay.ioff, lay.hpos))
    wide = ["true" if k in WIDE else "false" for k in g.kinds]
    return (
        f"  {{{base}, off = {_lua_list(off)}, ioff = {_lua_list(ioff)}, wide = {_lua_list(wide)},"
        f' hpos = {_lua_list(hpos)}, cw = {lay.cw}, rf = "{lay.rf}", rs = {lay.rs}, hf = "{lay.hf}",'
        f' hs = {lay.hs}, wf = "{lay.hf}c0{lay.rf[1:]}"}},'
    )


@cache
def _template() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def render(plan: EntityPlan, mode: Literal["update", "read"]) -> Script:
    """Render the script of ``plan``'s entity for ``mode``.

    Examples
    --------
    >>> a = Aggregate(name="orders_1h", entity="customer", source="orders", aggregation="count", window="1h")
    >>> s = render(EntityPlan("customer", (a,), 3_600_000, 86_400_000, 7_200_000), "read")
    >>> 'f = "orders_1h", b = 60000, nb = 60' in s.source, len(s.sha)
    (True, 40)
    """
    text = _template()
    gs = groups(plan)
    for placeholder, value in (
        ("{{ENTITY}}", plan.entity),
        ("{{N}}", str(len(plan.aggregates))),
        ("{{INPUTS}}", inputs(len(gs))),
        ("{{DECODE}}", decode(len(gs))),
        ("{{GROUPS}}", "\n".join(_group_table(g) for g in gs)),
        ("{{VALFMT}}", "<" + "d" * len(plan.aggregates)),
        ("{{LATENESS}}", str(plan.allowed_lateness_ms)),
        ("{{ENTITY_TTL}}", str(plan.entity_ttl_ms)),
        ("{{MARK_TTL}}", str(plan.mark_ttl_ms)),
        ("{{DISTINCT_LIMIT}}", str(DISTINCT_LIMIT)),
        ("{{APPLY}}", apply([(g.kind, g.kinds, g.members, g.bucket_ms, g.n_buckets) for g in gs])),
    ):
        text = text.replace(placeholder, value)
    source = f"{text}\nreturn {mode}()\n"
    return Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())
