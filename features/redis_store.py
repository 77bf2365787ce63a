r"""The Redis online store: one hash per entity, updated by generated Lua scripts applying many events.

Key layout (``P`` is the key prefix; ``{e:id}`` is the hash tag, so all keys of one entity live in one
Cluster slot and each script touches one slot):

=================================  ======  ==========================================================
key                                type    content
=================================  ======  ==========================================================
``P f:{customer:42}``              hash    one field per *group* of aggregates (below), ``_t``
                                           (largest event time, ms), ``_e`` (event time of the last
                                           applied event), ``_u`` (wall time of the last write, ms),
                                           ``_late`` (late events refused), ``@<topic>/<partition>``
                                           (offset fence: the last offset processed)
``P f:{customer:42}:d:<event_id>`` string  dedupe mark, ``SET NX`` with TTL = longest window + lateness
``P f:{customer:42}:z:<group>``    zset    archive of a windowed group: its oldest records (score:
                                           bucket index, member: the record), see below
=================================  ======  ==========================================================

Groups (:func:`features.lua.groups`; ``features/entity.lua`` has the details). A group's field is named
by its members joined with ``+`` (``orders_24h+spend_24h``); numbers are little-endian doubles.

- *Windowed*: the numeric aggregates (``count``/``sum``/``mean``/``min``/``max``/``last``/
  ``time_since_last``) of one bucket size and window length that every event feeds together (same
  source, filter and field presence, :func:`features.lua.always_present`) share one bucket list: a
  header ``E, R``, then each member's running aggregate (``count``/``sum``/``min``/``max`` one double,
  ``mean`` two, ``last``/``time_since_last`` none), then the records ``(bucket index, each member's
  cell)`` in index order (cells: ``count`` n, ``sum`` s, ``mean`` s,n, ``min``/``max`` one value,
  ``last`` (event ms, value), ``time_since_last`` latest event ms). The first ``R`` records lie at or
  below ``E`` (out of the window, kept for the lateness), the others make the running aggregates.
  The field keeps at most 64 such records after a call (``SPILL_AT`` in ``entity.lua``); the oldest
  go to the group's *archive* (the ``:z:`` sorted set; field ``<group>#z`` holds its bounds ``A, S``
  as doubles), so the field an event rewrites holds the window plus at most 64 records, whatever the
  history and the lateness. An event in the newest bucket or a newer one never reads the archive; an
  older event or a read whose window reaches into it fetches that window's archived records
  (``ZRANGEBYSCORE``, O(log n + window)). Records below the retention cut leave the archive 32 buckets
  late (no window reads them meanwhile).
- *Lifetime*: every numeric lifetime aggregate's cell, packed in definition order (NaN: none yet).
- *distinct_count*: one text field per aggregate, named after it (members joined by ``\x1f``).

Each member keeps the arithmetic it would have alone (its own running value, evictions and
rebuilds), so sharing the records changes no value. An event costs O(1) per group (plus each bucket's
eviction once), whatever the history; a group the event does not feed is read, not written. A group of
one member has the same bytes as the field of that aggregate had before groups existed.

Why this layout (measured with one customer, an order per minute of event time, the shipped
definitions and their 90-day lateness): with every record kept in the field, the minute-bucket ``1h``
group's field grew by 24 bytes per minute (345 KB after 7 days) and an event cost 32 us of Redis on day
0 and 290 us on day 7 (O(history): each event rewrites the field). With the archive the field stays
near 2 KB and the cost flat. Per-bucket tiles as separate keys or fields (Tecton/Chronon style) would
cost a Redis command per tile touched; the running aggregates already make an update O(1) per member
and a read of the newest window O(1), so only the records kept for the lateness had to leave the field.

Expiry: a written group drops the buckets no read within the lateness can need
(:func:`features.windows.expired_below`); every value is computed as if the others were dropped too, as
the in-memory store does. The entity hash and its archives get ``PEXPIRE entity_ttl_ms`` on every write
that is not fenced, so an idle entity (its fences and lifetime values with it) disappears after
``entity_ttl_ms``. The archives share the entity's hash tag, so a script still touches one slot.

Scripts: per entity one *update* and one *read* script, rendered from the definitions by
:mod:`features.lua` when the store is bound (no I/O) and run with ``EVALSHA``; on ``NOSCRIPT`` the script
is loaded (``SCRIPT LOAD``) and the refused calls are sent again. One update call applies up to
:data:`EVENTS_PER_CALL` events in order: ``KEYS`` = hash, mark per event; ``ARGV[1]`` = every event packed
in one string (unpacked with ``struct`` in Lua: one argument to encode per call instead of 4 + one per
group per event), each as offset, event time, wall ms (doubles), the ``ARGV`` position of its fence
(``<H``; 1: none), then one input per group, length-prefixed (:func:`group_packer`;
empty: the event feeds none of it); ``ARGV[2..]`` = the call's distinct fences (``"topic/partition"``).
Reply: ``[statuses, values]``, one letter per event (``a``pplied, ``d``uplicate, ``f``enced, ``l``ate) and
every event's values, one double per aggregate in definition order (NaN: none). Within a call each entity
hash is read once (``HMGET``) and written once at the end (``HSET`` of the changed fields, ``PEXPIRE``);
every event still sets its dedupe mark (``SET NX``). With a ``RedisCluster`` client the events of one call
share a hash slot; with one server any entities share a call. Read: ``KEYS`` = up to :data:`IDS_PER_READ`
hashes, ``ARGV`` = as-of ms or ``""``, then the 1-based positions of the aggregates wanted (none: all);
only the groups holding them are fetched (``HMGET``) and only those members computed. Reply ``[found,
values]``: one letter per key (``1`` known, ``0`` unknown) and the wanted values of each known key, packed
doubles.

Changing the definitions renames the fields of the groups whose members change; their old fields are
left to the entity TTL and the new ones start empty (rebuild with ``hanzo-ml features backfill``).

Round trips: :meth:`RedisOnlineStore.apply` sends a whole batch in one pipeline (no ``MULTI``; each call
is atomic by itself), :meth:`RedisOnlineStore.read` all entities of a batch in one script call (one
per :data:`IDS_PER_READ` ids and hash slot).
"""

from __future__ import annotations

import logging
import operator
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import redis
import redis.asyncio
from redis.cluster import RedisCluster
from redis.crc import key_slot

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError, ValidationError
from hanzo.ml.features.backend import EntityPlan, EntityUpdate, OnlineStore, Status, Values
from hanzo.ml.features.definitions import Input
from hanzo.ml.features.lua import Group, Script, groups, render

logger = logging.getLogger(__name__)

SEP = "\x1f"


_DOUBLE = struct.Struct("<d")
_PAIR = struct.Struct("<dd")
#: The head of one event in an update call's ARGV[1]: offset, event time, wall ms, fence position.
_EVENT = struct.Struct("<dddH")
_LEN = struct.Struct("<I")
_NONE = _LEN.pack(0)


def encode_input(value: Input) -> bytes:
    r"""Encode one aggregate input as a script argument: little-endian doubles, or text members.

    Examples
    --------
    >>> encode_input(None), encode_input(2.5), encode_input(frozenset({"b", "a"}))
    (b'', b'\x00\x00\x00\x00\x00\x00\x04@', b'a\x1fb')
    >>> len(encode_input((30.0, 2.0)))
    16
    """
    if value is None:
        return b""
    if isinstance(value, float):
        return _DOUBLE.pack(value)
    if isinstance(value, tuple):
        return _PAIR.pack(*value)
    return SEP.join(sorted(value)).encode()


def decode_values(blob: bytes, n: int) -> Values:
    """Decode the doubles a script returns (NaN: no value).

    Examples
    --------
    >>> decode_values(struct.pack("<3d", 1.5, float("nan"), 0.0), 3)
    [1.5, None, 0.0]
    """
    return [None if v != v else v for v in struct.unpack(f"<{n}d", blob)]


_NAN = float("nan")


def group_packer(group: Group) -> Callable[[tuple[Input, ...]], bytes]:
    r"""Return the function encoding one event's inputs to ``group`` (all plan inputs in, one argument out).

    The argument is length-prefixed (``<I``), as the update script reads it, and packed in one ``struct``
    call. Windowed: every member's input as doubles (``mean``: sum, n), nothing when the event feeds
    none; lifetime: the same with NaN for a member the event does not feed; ``distinct_count``: its
    members.

    Examples
    --------
    >>> g = Group("w", "n+s", (0, 2), ("count", "mean"), 60_000, 60)
    >>> group_packer(g)((1.0, None, (5.0, 1.0))).hex(" ", 4), group_packer(g)((None, None, None))
    ('18000000 00000000 0000f03f 00000000 00001440 00000000 0000f03f', b'\x00\x00\x00\x00')
    """
    members, kinds = group.members, group.kinds
    length = _LEN.pack
    if group.kind == "d":
        (only,) = members

        def text(inputs: tuple[Input, ...]) -> bytes:
            v = inputs[only]
            if v is None:
                return _NONE
            b = encode_input(v)
            return length(len(b)) + b

        return text
    width = 8 * group.input_width
    pack = struct.Struct("<I" + "d" * group.input_width).pack
    if len(members) == 1 and kinds[0] != "mean":
        (only,) = members
        return lambda inputs: _NONE if (v := inputs[only]) is None else pack(width, v)
    lifetime = group.kind == "l"

    def mixed() -> bytes:
        msg = (
            f"aggregates {group.field.replace('+', ', ')} share one bucket list but an event feeds only "
            f"some of them; their field presence differs, fix features.lua.always_present"
        )
        raise ValidationError(msg)

    if "mean" not in kinds:
        pick = operator.itemgetter(*members)

        def flat(inputs: tuple[Input, ...]) -> bytes:
            values = pick(inputs)
            if None not in values:
                return pack(width, *values)
            if all(v is None for v in values):
                return _NONE
            if lifetime:
                return pack(width, *(_NAN if v is None else v for v in values))
            return mixed()

        return flat

    def packed(inputs: tuple[Input, ...]) -> bytes:
        flat: list[Any] = [width]
        fed = 0
        for p, kind in zip(members, kinds, strict=True):
            v = inputs[p]
            if v is None:
                flat += (_NAN, _NAN) if kind == "mean" else (_NAN,)
                continue
            fed += 1
            if kind == "mean":
                flat += v  # type: ignore[arg-type]
            else:
                flat.append(v)
        if fed == 0:
            return _NONE
        if not lifetime and fed < len(members):
            return mixed()
        return pack(*flat)

    return packed


#: Status letters of the update script's reply.
_CODES: dict[str, Status] = {"a": "applied", "d": "duplicate", "f": "fenced", "l": "late"}

#: Most events one update script call applies (it blocks Redis meanwhile; a few ms).
EVENTS_PER_CALL = 100
#: Update calls written ahead of the replies read (Redis has the next one waiting when it ends one).
IN_FLIGHT = 2
#: Most entities one read script call reads (it blocks Redis meanwhile).
IDS_PER_READ = 128


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOnlineStore(OnlineStore):
    """Windowed feature state in Redis (or Redis Cluster), updated by atomic multi-event Lua scripts.

    Parameters
    ----------
    client
        A sync ``redis.Redis`` created by the caller (``decode_responses`` either way).
    key_prefix
        Prepended to every key; must not contain ``{`` or ``}`` (the hash tag is the entity's).
    async_factory
        Makes a ``redis.asyncio.Redis`` for the same server and credentials, for :meth:`read_async`
        (whoever reads asynchronously makes one client per event loop and closes it).

    Examples
    --------
    >>> store = RedisOnlineStore(client=None, key_prefix="demo:")  # no I/O until used
    >>> store.entity_key("customer", "42")
    'demo:f:{customer:42}'
    """

    def __init__(
        self,
        client: redis.Redis,
        key_prefix: str = "",
        async_factory: Callable[[], redis.asyncio.Redis] | None = None,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.async_factory = None if isinstance(client, RedisCluster) else async_factory
        if "{" in key_prefix or "}" in key_prefix:
            msg = f"key prefix {key_prefix!r} contains '{{' or '}}'; the hash tag must be the entity's"
            raise ConfigError(msg)
        self._update: dict[str, Script] = {}
        self._read: dict[str, Script] = {}
        self._plans: dict[str, EntityPlan] = {}
        self._packers: dict[str, list[Callable[[tuple[Input, ...]], bytes]]] = {}
        self._cluster = isinstance(client, RedisCluster)

    def bind(self, plans: Sequence[EntityPlan]) -> None:
        """Render the scripts of every entity (loaded lazily, on the first ``NOSCRIPT``)."""
        for plan in plans:
            self._plans[plan.entity] = plan
            self._packers[plan.entity] = [group_packer(g) for g in groups(plan)]
            self._update[plan.entity] = render(plan, "update")
            self._read[plan.entity] = render(plan, "read")

    def entity_key(self, entity: str, entity_id: str) -> str:
        """Return the key of an entity's hash; the other keys of the entity extend it."""
        if "{" in entity_id or "}" in entity_id:
            msg = f"{entity} id {entity_id!r} contains '{{' or '}}', which would break its Redis hash tag"
            raise ValidationError(msg)
        return f"{self.key_prefix}f:{{{entity}:{entity_id}}}"

    def apply(self, entity: str, updates: Iterable[EntityUpdate]) -> list[tuple[Status, Values]]:
        """Apply the updates in order, in one round trip of multi-event script calls."""
        return list(self.apply_stream(entity, updates))

    def apply_stream(self, entity: str, updates: Iterable[EntityUpdate]) -> Iterator[tuple[Status, Values]]:
        """:meth:`apply`, each result given as soon as its call's reply is read.

        ``updates`` is consumed as the calls are built, and with a plain ``redis.Redis`` the replies are
        read while later calls run (:meth:`_stream`): the caller's work making the next updates and
        using the results overlaps Redis running the calls already sent.
        """
        script = self._update[entity]
        n = len(self._plans[entity].aggregates)
        packers = self._packers[entity]
        head = _EVENT.pack
        sent: list[list[tuple[int, EntityUpdate, str]]] = []
        chunks = self._chunks(entity, updates)
        first = next(chunks, None)
        if first is None:
            return  # no I/O

        def calls() -> Iterator[tuple[Any, ...]]:  # built while Redis runs the calls sent before
            for chunk in chain([first], chunks):
                sent.append(chunk)
                kargs: list[Any] = []
                parts: list[bytes] = []
                fences: dict[str, int] = {}
                for _, u, key in chunk:
                    kargs += (key, f"{key}:d:{u.event_id}")
                    inputs = u.inputs
                    fence = 1 if u.fence is None else fences.setdefault(u.fence, len(fences) + 2)
                    parts.append(head(u.offset, u.event_time, u.wall_ms, fence))
                    parts += [pack(inputs) for pack in packers]
                yield (len(kargs), *kargs, b"".join(parts), *fences)

        def results(chunk: list[tuple[int, EntityUpdate, str]], reply: Any) -> list[tuple[Status, Values]]:
            codes, blob = reply
            values = decode_values(blob, n * len(chunk))
            return [(_CODES[code], values[p * n : (p + 1) * n]) for p, code in enumerate(_text(codes))]

        if not self._cluster and isinstance(self.client, redis.Redis):
            for k, reply in enumerate(self._stream(script, calls())):
                yield from results(sent[k], reply)
            return
        # a cluster's calls go by hash slot: put the results back in the updates' order
        replies = self._run(script, calls())
        out: list[tuple[Status, Values]] = [("applied", [])] * sum(len(c) for c in sent)
        for chunk, reply in zip(sent, replies, strict=True):
            for (j, _, _), result in zip(chunk, results(chunk, reply), strict=True):
                out[j] = result
        yield from out

    def _chunks(
        self, entity: str, updates: Iterable[EntityUpdate]
    ) -> Iterator[list[tuple[int, EntityUpdate, str]]]:
        """The updates as ``(position, update, hash key)``, :data:`EVENTS_PER_CALL` (of one slot) a call.

        Without a cluster the chunks are made as the updates come; a ``RedisCluster`` client groups
        them by hash slot first.
        """
        prefix = f"{self.key_prefix}f:{{{entity}:"
        step = EVENTS_PER_CALL
        by_slot: dict[int, list[tuple[int, EntityUpdate, str]]] = {}
        chunk: list[tuple[int, EntityUpdate, str]] = []
        for j, u in enumerate(updates):
            if "{" in u.entity_id or "}" in u.entity_id:
                self.entity_key(entity, u.entity_id)  # raises, naming the id
            key = f"{prefix}{u.entity_id}}}"
            if self._cluster:
                by_slot.setdefault(key_slot(key.encode()), []).append((j, u, key))
                continue
            chunk.append((j, u, key))
            if len(chunk) == step:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        for g in by_slot.values():
            for i in range(0, len(g), step):
                yield g[i : i + step]

    def read(
        self,
        entity: str,
        ids: Sequence[str],
        as_of_ms: int | None,
        wall_ms: int,
        *,
        aggregates: Sequence[str] | None = None,
    ) -> list[Values | None]:
        """Values of each entity as of ``as_of_ms`` (default: its latest event time), one round trip.

        ``aggregates`` names the aggregates to compute (default: all); the others are ``None`` in the
        returned values, and Redis neither fetches nor computes them. Ids go :data:`IDS_PER_READ` to a
        script call (per hash slot with a ``RedisCluster`` client).
        """
        n, positions, chunks, calls = self._read_calls(entity, ids, as_of_ms, aggregates)
        if not calls:
            return [None] * len(ids)  # nothing to compute: every entity gets its defaults
        return self._read_values(len(ids), n, positions, chunks, self._run(self._read[entity], calls))

    async def read_async(
        self,
        client: redis.asyncio.Redis,
        entity: str,
        ids: Sequence[str],
        as_of_ms: int | None,
        wall_ms: int,
        *,
        aggregates: Sequence[str] | None = None,
    ) -> list[Values | None]:
        """:meth:`read` through ``client`` (made by ``async_factory``): the event loop runs meanwhile."""
        n, positions, chunks, calls = self._read_calls(entity, ids, as_of_ms, aggregates)
        if not calls:
            return [None] * len(ids)
        replies = await self._run_async(client, self._read[entity], calls)
        return self._read_values(len(ids), n, positions, chunks, replies)

    def _read_calls(
        self, entity: str, ids: Sequence[str], as_of_ms: int | None, aggregates: Sequence[str] | None
    ) -> tuple[int, list[int], list[list[int]], list[tuple[Any, ...]]]:
        """``(aggregates of the entity, positions wanted, chunks of id positions, script calls)``."""
        plan = self._plans[entity]
        n = len(plan.aggregates)
        if aggregates is None:
            positions = list(range(n))
        else:
            where = {a.name: p for p, a in enumerate(plan.aggregates)}
            unknown = [a for a in aggregates if a not in where]
            if unknown:
                msg = f"{entity} has no aggregate {unknown[0]!r}; known: {sorted(where)}"
                raise ConfigError(msg)
            positions = sorted({where[a] for a in aggregates})
        keys = [self.entity_key(entity, i) for i in ids]
        if not positions or not keys:
            return n, positions, [], []
        groups: dict[int, list[int]] = {}
        for j, key in enumerate(keys):
            groups.setdefault(key_slot(key.encode()) if self._cluster else 0, []).append(j)
        step = IDS_PER_READ
        chunks = [g[i : i + step] for g in groups.values() for i in range(0, len(g), step)]
        args = ["" if as_of_ms is None else as_of_ms]
        if len(positions) < n:
            args += [p + 1 for p in positions]
        calls = [(len(chunk), *(keys[j] for j in chunk), *args) for chunk in chunks]
        return n, positions, chunks, calls

    @staticmethod
    def _read_values(
        count: int, n: int, positions: list[int], chunks: list[list[int]], replies: list[Any]
    ) -> list[Values | None]:
        out: list[Values | None] = [None] * count
        w = len(positions)
        for chunk, (found, blob) in zip(chunks, replies, strict=True):
            values = decode_values(blob, w * _text(found).count("1"))
            p = 0
            for j, flag in zip(chunk, _text(found), strict=True):
                if flag != "1":
                    continue
                row: Values = [None] * n
                for q, pos in enumerate(positions):
                    row[pos] = values[p * w + q]
                out[j] = row
                p += 1
        return out

    def last_update(self, entity: str, entity_id: str, wall_ms: int) -> tuple[int, int] | None:
        """``(largest event time, wall time of the last write)`` in ms."""
        t, u = self.client.hmget(self.entity_key(entity, entity_id), ["_t", "_u"])
        if t is None or u is None:
            return None
        return int(float(t)), int(float(u))

    def last_updates(self, entity: str, ids: Sequence[str], wall_ms: int) -> list[tuple[int, int] | None]:
        """:meth:`last_update` of many entities in one pipeline."""
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self.entity_key(entity, i), ["_t", "_u"])
        try:
            rows = pipe.execute()
        except redis.ConnectionError as exc:
            msg = f"Redis did not answer ({exc}); check that it runs and the address is right"
            raise ServiceUnavailableError(msg) from exc
        return [None if t is None or u is None else (int(float(t)), int(float(u))) for t, u in rows]

    def _run(self, script: Script, calls: Iterable[Sequence[Any]]) -> list[Any]:
        """``EVALSHA`` each call (``numkeys, *keys, *args``), one round trip; resend those refused NOSCRIPT.

        With a plain ``redis.Redis`` each call is written to the socket as soon as it is built, so Redis
        runs the first calls while the next are encoded (the replies are read after the last is sent);
        other clients (``RedisCluster``, wrappers) get one pipeline.
        """
        if isinstance(self.client, redis.Redis) and not self._cluster:
            return list(self._stream(script, calls))
        calls = list(calls)
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in pending:
                pipe.evalsha(script.sha, *calls[i])
            try:
                results = pipe.execute(raise_on_error=False)
            except redis.ConnectionError as exc:
                raise _unavailable(exc) from exc
            pending = _take_replies(replies, pending, results, attempt)
            if not pending:
                break
            logger.info("loading feature script %s into Redis", script.sha)
            self.client.script_load(script.source)
        return replies

    def _stream(self, script: Script, calls: Iterable[Sequence[Any]]) -> Iterator[Any]:
        """:meth:`_run` on one pooled connection, :data:`IN_FLIGHT` calls ahead of the replies read.

        Each call is written as soon as it is built; once more than :data:`IN_FLIGHT` calls are
        unanswered the oldest reply is read and given to the caller, in call order. So Redis always has
        the next call waiting when it finishes one, and the client builds the next calls and uses the
        replies while Redis runs the previous ones. A call refused NOSCRIPT stops the stream until the
        script is loaded and every refused call in flight is sent again, in order.

        A connection error is retried once on a new connection with every call not yet answered (the
        scripts are idempotent: fences and dedupe marks make a repeated call change nothing), as
        redis-py retries a pipeline.
        """
        pool = self.client.connection_pool
        built: list[Sequence[Any]] = []
        source = _kept(iter(calls), built)
        answered = 0
        for attempt in range(2):
            conn = pool.get_connection()
            ready: deque[Any] = deque()
            try:
                sent = answered
                for call in chain(built[answered:], source):
                    conn.send_packed_command(conn.pack_command("EVALSHA", script.sha, *call))
                    sent += 1
                    while sent - answered > IN_FLIGHT:
                        answered += 1
                        yield self._next_reply(conn, script, built, ready, answered - 1, sent)
                while answered < sent:
                    answered += 1
                    yield self._next_reply(conn, script, built, ready, answered - 1, sent)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                conn.disconnect()
                if attempt:
                    raise _unavailable(exc) from exc
                continue
            except BaseException:
                conn.disconnect()  # replies may be left on the socket
                raise
            finally:
                pool.release(conn)
            break

    def _next_reply(
        self, conn: Any, script: Script, built: list[Sequence[Any]], ready: deque[Any], i: int, sent: int
    ) -> Any:
        """The reply of call ``i`` (calls ``i`` to ``sent - 1`` in flight); a script error is raised.

        On NOSCRIPT every reply in flight is read, the script loaded on ``conn`` and the refused calls
        sent again in order; their replies wait in ``ready``.
        """
        if not ready:
            reply = _reply(conn)
            if isinstance(reply, redis.exceptions.NoScriptError):
                replies = [reply, *(_reply(conn) for _ in range(i + 1, sent))]
                logger.info("loading feature script %s into Redis", script.sha)
                conn.send_command("SCRIPT", "LOAD", script.source)
                conn.read_response()
                again = [q for q, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
                for q in again:
                    conn.send_packed_command(conn.pack_command("EVALSHA", script.sha, *built[i + q]))
                for q in again:
                    replies[q] = _reply(conn)
                ready.extend(replies)
            else:
                ready.append(reply)
        reply = ready.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _run_async(
        self, client: redis.asyncio.Redis, script: Script, calls: Sequence[Sequence[Any]]
    ) -> list[Any]:
        """:meth:`_run` through an asyncio client."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            if len(pending) == 1:  # the usual read: one call, no pipeline to build
                try:
                    results = [await client.evalsha(script.sha, *calls[pending[0]])]
                except redis.exceptions.NoScriptError as exc:
                    results = [exc]
                except redis.ConnectionError as exc:
                    raise _unavailable(exc) from exc
            else:
                pipe = client.pipeline(transaction=False)
                for i in pending:
                    pipe.evalsha(script.sha, *calls[i])
                try:
                    results = await pipe.execute(raise_on_error=False)
                except redis.ConnectionError as exc:
                    raise _unavailable(exc) from exc
            pending = _take_replies(replies, pending, results, attempt)
            if not pending:
                break
            logger.info("loading feature script %s into Redis", script.sha)
            await client.script_load(script.source)
        return replies


def _kept(calls: Iterator[Sequence[Any]], built: list[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """The calls of ``calls``, each kept in ``built`` as it is taken (to resend them after an error)."""
    for call in calls:
        built.append(call)
        yield call


def _reply(conn: Any) -> Any:
    """The next reply on ``conn``; a script's error is returned, not raised (NOSCRIPT is resent)."""
    try:
        return conn.read_response()
    except redis.ResponseError as exc:
        return exc


def _unavailable(exc: BaseException) -> ServiceUnavailableError:
    msg = f"Redis did not answer ({exc}); check that it runs and the address is right"
    return ServiceUnavailableError(msg)


def _take_replies(replies: list[Any], pending: list[int], results: Sequence[Any], attempt: int) -> list[int]:
    """Store the replies of ``pending`` calls; return those refused NOSCRIPT the first time (to resend)."""
    retry = []
    for i, result in zip(pending, results, strict=True):
        if isinstance(result, redis.exceptions.NoScriptError) and attempt == 0:
            retry.append(i)
        elif isinstance(result, Exception):
            raise result
        else:
            replies[i] = result
    return retry
