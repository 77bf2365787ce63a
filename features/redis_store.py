r"""The Redis online store: one hash per entity, updated by one generated Lua script per event.

Key layout (``P`` is the key prefix; ``{e:id}`` is the hash tag, so all keys of one entity live in one
Cluster slot and each script touches one slot):

=================================  ======  ==========================================================
key                                type    content
=================================  ======  ==========================================================
``P f:{customer:42}``              hash    aggregate fields (below) and ``_t`` (largest event time, ms),
                                           ``_e`` (event time of the last applied event), ``_u`` (wall
                                           time of the last write, ms), ``_late`` (late events refused)
``P f:{customer:42}:fence``        hash    ``"topic/partition"`` -> last offset processed
``P f:{customer:42}:d:<event_id>`` string  dedupe mark, ``SET NX`` with TTL = longest window + lateness
=================================  ======  ==========================================================

Aggregate fields are ``<feature>/<component><bucket index>`` (no index for lifetime aggregates);
components: ``n`` count, ``s`` sum, ``m`` min, ``x`` max, ``l`` last (``"<event ms> <value>"``), ``d``
distinct values (joined by ``\x1f``), ``e`` latest event time (``time_since_last``). ``mean`` keeps ``s``
and ``n``. Numbers are written with 17 significant digits, so they read back exactly.

Expiry: buckets no read within the allowed lateness can need are deleted on every applied write
(:func:`features.windows.expired_below`); the entity hash and fence get ``PEXPIRE entity_ttl_ms`` on every
write that is not fenced, so an idle entity disappears after ``entity_ttl_ms`` (lifetime values with it).

Scripts: per entity one *update* and one *read* script, rendered from the definitions by
:mod:`features.lua` when the store is bound (no I/O) and run with ``EVALSHA``; on ``NOSCRIPT`` the script
is loaded (``SCRIPT LOAD``) and the refused calls are sent again. Update arguments: ``KEYS`` = hash,
fence, mark; ``ARGV`` = fence field (``""``: none), offset, event time, wall ms, then one input per
aggregate (``""``: none). Reply: ``[status, value...]``. Read: ``KEYS`` = hash, ``ARGV`` = as-of ms or
``""``; reply ``[as_of, value...]`` or ``[nil]`` for an unknown entity.

Round trips: :meth:`RedisOnlineStore.apply` sends a whole batch in one pipeline (no ``MULTI``; each script
is atomic by itself), :meth:`RedisOnlineStore.read` all entities of a batch in one pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from config.errors import ConfigError, ServiceUnavailableError, ValidationError
from features.backend import EntityPlan, EntityUpdate, OnlineStore, Status, Values
from features.definitions import Input
from features.lua import Script, render

logger = logging.getLogger(__name__)

SEP = "\x1f"


def encode_input(value: Input) -> str:
    r"""Encode one aggregate input as a script argument.

    Examples
    --------
    >>> encode_input(None), encode_input(2.5), encode_input((30.0, 2.0)), encode_input(frozenset({"b", "a"}))
    ('', '2.5', '30.0 2.0', 'a\x1fb')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return f"{value[0]!r} {value[1]!r}"
    return SEP.join(sorted(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class RedisOnlineStore(OnlineStore):
    """Windowed feature state in Redis (or Redis Cluster), one atomic Lua script per entity update.

    Parameters
    ----------
    client
        A sync ``redis.Redis`` created by the caller (``decode_responses`` either way).
    key_prefix
        Prepended to every key; must not contain ``{`` or ``}`` (the hash tag is the entity's).

    Examples
    --------
    >>> store = RedisOnlineStore(client=None, key_prefix="demo:")  # no I/O until used
    >>> store.entity_key("customer", "42")
    'demo:f:{customer:42}'
    """

    def __init__(self, client: redis.Redis, key_prefix: str = "") -> None:
        self.client = client
        self.key_prefix = key_prefix
        if "{" in key_prefix or "}" in key_prefix:
            msg = f"key prefix {key_prefix!r} contains '{{' or '}}'; the hash tag must be the entity's"
            raise ConfigError(msg)
        self._update: dict[str, Script] = {}
        self._read: dict[str, Script] = {}
        self._plans: dict[str, EntityPlan] = {}

    def bind(self, plans: Sequence[EntityPlan]) -> None:
        """Render the scripts of every entity (loaded lazily, on the first ``NOSCRIPT``)."""
        for plan in plans:
            self._plans[plan.entity] = plan
            self._update[plan.entity] = render(plan, "update")
            self._read[plan.entity] = render(plan, "read")

    def entity_key(self, entity: str, entity_id: str) -> str:
        """Return the key of an entity's hash; the other keys of the entity extend it."""
        if "{" in entity_id or "}" in entity_id:
            msg = f"{entity} id {entity_id!r} contains '{{' or '}}', which would break its Redis hash tag"
            raise ValidationError(msg)
        return f"{self.key_prefix}f:{{{entity}:{entity_id}}}"

    def apply(self, entity: str, updates: Sequence[EntityUpdate]) -> list[tuple[Status, Values]]:
        """Apply the updates in order, in one pipeline (one round trip)."""
        script = self._update[entity]
        calls = []
        for u in updates:
            key = self.entity_key(entity, u.entity_id)
            args = [u.fence or "", u.offset, u.event_time, u.wall_ms, *map(encode_input, u.inputs)]
            calls.append((key, f"{key}:fence", f"{key}:d:{u.event_id}", *args))
        replies = self._run(script, 3, calls)
        out: list[tuple[Status, Values]] = []
        for reply in replies:
            status: Status = _text(reply[0])  # type: ignore[assignment]
            out.append((status, [_number(v) for v in reply[1:]]))
        return out

    def read(
        self, entity: str, ids: Sequence[str], as_of_ms: int | None, wall_ms: int
    ) -> list[Values | None]:
        """Values of each entity as of ``as_of_ms`` (default: its latest event time), one pipeline."""
        calls = [(self.entity_key(entity, i), "" if as_of_ms is None else as_of_ms) for i in ids]
        replies = self._run(self._read[entity], 1, calls)
        return [None if r[0] is None else [_number(v) for v in r[1:]] for r in replies]

    def last_update(self, entity: str, entity_id: str, wall_ms: int) -> tuple[int, int] | None:
        """``(largest event time, wall time of the last write)`` in ms."""
        t, u = self.client.hmget(self.entity_key(entity, entity_id), ["_t", "_u"])
        if t is None or u is None:
            return None
        return int(float(t)), int(float(u))

    def _run(self, script: Script, n_keys: int, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """``EVALSHA`` every call in one pipeline; load the script and resend the calls refused NOSCRIPT."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in pending:
                pipe.evalsha(script.sha, n_keys, *calls[i])
            try:
                results = pipe.execute(raise_on_error=False)
            except redis.ConnectionError as exc:
                msg = f"Redis did not answer ({exc}); check that it runs and the address is right"
                raise ServiceUnavailableError(msg) from exc
            retry = []
            for i, result in zip(pending, results, strict=True):
                if isinstance(result, redis.exceptions.NoScriptError) and attempt == 0:
                    retry.append(i)
                elif isinstance(result, Exception):
                    raise result
                else:
                    replies[i] = result
            if not retry:
                break
            logger.info("loading feature script %s into Redis", script.sha)
            self.client.script_load(script.source)
            pending = retry
        return replies
