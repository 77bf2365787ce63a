"""Render the per-entity Lua scripts from the feature definitions.

The template ``features/entity.lua`` holds the window code; rendering fills in the entity's aggregates
(one generated call per aggregate with its name, kind, bucket size and buckets per window as literals:
an EVAL script keeps nothing between calls, so no definitions table is built per call) and its time
rules, then appends the entry point:
``update`` (a list of events in order, each with its fence, dedupe, lateness, every aggregate, fence and
mark; each entity hash read once and written once per call; returns each event's values as of its
time) or ``read`` (values as of a time, read-only; of the aggregates named by position, or all; the
read script alone gets ``def(i)``, the definition of aggregate ``i``). Arguments and replies are
described in :mod:`features.redis_store`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from features.backend import EntityPlan
from features.windows import DISTINCT_LIMIT

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "entity.lua"


@dataclass(frozen=True)
class Script:
    """A rendered script and its SHA1 (what ``EVALSHA`` takes)."""

    source: str
    sha: str


@cache
def _template() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def _steps(plan: EntityPlan) -> str:
    return "\n".join(
        f'  one({i}, "{a.name}", "{a.aggregation}", {a.bucket_ms}, {a.n_buckets})'
        for i, a in enumerate(plan.aggregates, start=1)
    )


def _defs(plan: EntityPlan) -> str:
    """The read script's ``def(i)``: kind, bucket size and buckets per window of aggregate ``i``."""
    lines = ["local function def(i)"]
    for i, a in enumerate(plan.aggregates, start=1):
        word = "if" if i == 1 else "elseif"
        lines.append(f'  {word} i == {i} then return "{a.aggregation}", {a.bucket_ms}, {a.n_buckets}')
    lines += ["  end", "end"]
    return "\n".join(lines) + "\n"


def render(plan: EntityPlan, mode: Literal["update", "read"]) -> Script:
    """Render the script of ``plan``'s entity for ``mode``.

    Examples
    --------
    >>> from features.definitions import Aggregate
    >>> a = Aggregate(name="orders_1h", entity="customer", source="orders", aggregation="count", window="1h")
    >>> s = render(EntityPlan("customer", (a,), 3_600_000, 86_400_000, 7_200_000), "read")
    >>> 'one(1, "orders_1h", "count", 60000, 60)' in s.source, len(s.sha)
    (True, 40)
    """
    text = _template().replace("{{READ_DEFS}}\n", _defs(plan) if mode == "read" else "")
    for placeholder, value in (
        ("{{ENTITY}}", plan.entity),
        ("{{N}}", str(len(plan.aggregates))),
        ("{{STEPS}}", _steps(plan)),
        ("{{FIELDS}}", ", ".join(f'"{a.name}"' for a in plan.aggregates)),
        ("{{VALFMT}}", "<" + "d" * len(plan.aggregates)),
        ("{{LATENESS}}", str(plan.allowed_lateness_ms)),
        ("{{ENTITY_TTL}}", str(plan.entity_ttl_ms)),
        ("{{MARK_TTL}}", str(plan.mark_ttl_ms)),
        ("{{DISTINCT_LIMIT}}", str(DISTINCT_LIMIT)),
    ):
        text = text.replace(placeholder, value)
    source = f"{text}\nreturn {mode}()\n"
    return Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())
