"""The online-store interface and the records that cross it.

A backend keeps, per entity, the bucketed state of that entity's aggregates, an offset fence per
``topic/partition`` and a dedupe mark per event id. It applies one :class:`EntityUpdate` atomically
(fence check, dedupe check, lateness check, every aggregate, fence and mark) and returns the entity's values
as of the event's time. The window math is the one of :mod:`features.windows`; the backends are
:class:`features.redis_store.RedisOnlineStore` and :class:`features.memory_store.InMemoryOnlineStore`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from hanzo.ml.features.definitions import Aggregate, Event, Input

logger = logging.getLogger(__name__)

Status = Literal["applied", "duplicate", "fenced", "late"]
STATUSES: tuple[Status, ...] = ("applied", "duplicate", "fenced", "late")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event with where it was read from; ``offset=None`` (or ``topic=None``) skips the offset fence.

    Examples
    --------
    >>> EventRecord(event=None, topic="orders", partition=2, offset=41).fence
    'orders/2'
    """

    event: Event
    topic: str | None = None
    partition: int = 0
    offset: int | None = None

    @property
    def fence(self) -> str | None:
        """The fence field ``"topic/partition"``, or ``None`` when the record has no offset."""
        if self.topic is None or self.offset is None:
            return None
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What applying one record did to one entity, and that entity's features as of the event's time.

    ``index`` is the position of the record in the batch: an order updates every product it contains, so a
    ``product`` batch can give several results per record (and an event without the entity's key none).
    ``features`` hold every feature of the entity, derived ones included; for ``applied`` they include the
    event (``time_since_last`` excepted, see :mod:`features.windows`), otherwise they are the stored state.
    """

    index: int
    entity_id: str
    event_id: str
    status: Status
    features: dict[str, float | None]


class EntityUpdate(NamedTuple):
    """One event for one entity, reduced to what each aggregate of the entity takes from it.

    A named tuple rather than a dataclass: the store makes one per event and entity on the hot path.
    """

    entity_id: str
    event_id: str
    event_time: int
    fence: str | None
    offset: int
    inputs: tuple[Input, ...]
    wall_ms: int


@dataclass(frozen=True)
class EntityPlan:
    """The aggregates of one entity and the time rules a backend applies to them."""

    entity: str
    aggregates: tuple[Aggregate, ...]
    allowed_lateness_ms: int
    entity_ttl_ms: int
    mark_ttl_ms: int


#: Raw values of one entity, in plan order (``None``: no value in the window).
Values = list[float | None]


class OnlineStore(ABC):
    """A place to keep windowed feature state; one implementation per backend."""

    @abstractmethod
    def bind(self, plans: Sequence[EntityPlan]) -> None:
        """Prepare for these entities (generate scripts); no I/O."""

    @abstractmethod
    def apply(self, entity: str, updates: Iterable[EntityUpdate]) -> list[tuple[Status, Values]]:
        """Apply updates in order, each atomically; one round trip for them all.

        A backend may consume ``updates`` while it works (the Redis store sends calls as they fill), so
        the caller can pass a generator that makes them.
        """

    def apply_stream(self, entity: str, updates: Iterable[EntityUpdate]) -> Iterator[tuple[Status, Values]]:
        """:meth:`apply`, the results given in order as they are known.

        Backends that wait for a server override it to give each result as soon as its reply is read,
        so the caller uses it while the server runs the next ones.
        """
        yield from self.apply(entity, updates)

    @abstractmethod
    def read(
        self, entity: str, ids: Sequence[str], as_of_ms: int | None, wall_ms: int
    ) -> list[Values | None]:
        """Values of each entity as of ``as_of_ms`` (default: its latest event time); ``None``: unknown."""

    @abstractmethod
    def last_update(self, entity: str, entity_id: str, wall_ms: int) -> tuple[int, int] | None:
        """``(latest event time, wall time of the last write)`` in ms, or ``None`` for an unknown entity."""

    def last_updates(self, entity: str, ids: Sequence[str], wall_ms: int) -> list[tuple[int, int] | None]:
        """:meth:`last_update` of many entities; backends override it with one round trip."""
        return [self.last_update(entity, i, wall_ms) for i in ids]
