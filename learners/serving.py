"""ServingEngine: predictions on demand, micro-batched feature reads, a prediction cache, hot reload.

The streaming worker scores every order as it arrives and writes ``score:{model}:{subject}``
(:func:`lookup_score` reads it back). The engine answers the other question, "score this now": it reads
the entity's stored features, lets request-time values override or add to them, and scores with the
model it serves, which may follow a registry alias (``production``) and be swapped while it serves.

Guarantees, stated plainly:

- Concurrent :meth:`ServingEngine.apredict` calls are collected into batches of at most ``max_batch``.
  A batch is sent when it is full or on the next turn of the event loop (no timer), so an idle engine
  adds no wait and the callers answered by one batch come back together as the next one. One batch
  reads the features of all its entities with one store call per entity kind (``get_features_batch``).
- With a store that reads asynchronously (:meth:`features.FeatureStore.async_reader`: the Redis store
  given an ``async_factory``), up to ``max_inflight`` batches read at once and the waiting requests are
  split between the free read slots, so the loop scores one batch while Redis computes the next one's
  features. Other stores (the in-memory one) are read inline, one batch at a time.
  A batch is scored by the models served when its read started, without yielding to the event loop;
  a model swap (hot reload) is one assignment on the loop's thread, so a swap happens between batches,
  never inside one, batches are answered in the order they were sent, and every response names the
  version that scored it.
- The cache hits only when the stored values just read equal those the cached score was computed from
  (see :mod:`learners.serving_cache`); it saves the model call, not the store read.

The engine is driven by one event loop; :meth:`ServingEngine.predict` may be called from another
thread with a thread-safe store (the Redis one), not with :class:`features.InMemoryOnlineStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import redis

from hanzo.ml.config.errors import ConfigError, HanzoError, ServiceUnavailableError, ValidationError
from hanzo.ml.features import AsyncFeatureReader
from hanzo.ml.learners.keys import score_key
from hanzo.ml.learners.serving_cache import PredictionCache
from hanzo.ml.learners.serving_models import (
    FeatureReader,
    Prediction,
    Request,
    ServedModel,
    UnknownModelError,
    check_value,
    scorer_for,
)

logger = logging.getLogger(__name__)

#: What a batch reads and who scores it: the served models by name (taken when the read starts) and,
#: per entity kind, ``(entity, ids, feature names, positions of its requests in the batch)``.
_Plan = tuple[dict[str, ServedModel], list[tuple[str, list[str], list[str], list[int]]]]


class ServingEngine:
    """Serve models over the feature store: batched reads, a prediction cache, registry hot reload.

    Parameters
    ----------
    store
        The feature store (:class:`features.FeatureStore`).
    redis_client
        A sync redis-py client for :meth:`lookup_score` (not needed for predictions).
    key_prefix
        Prefix of the score keys (the worker's ``key_prefix``).
    registry
        A :class:`registry.RegistryReader`, for :meth:`follow` and :meth:`reload`.
    max_batch
        Most requests scored in one batch (sent when full, else on the next turn of the event loop).
    cache_size
        Entries of the prediction cache; ``0`` turns it off.
    max_inflight
        With asynchronous reads: most batches whose read is under way at once; more requests wait, and
        go in the batch sent when a read ends.
    async_reads
        Read through the store's :meth:`~features.FeatureStore.async_reader` when it has one (``False``:
        always read inline, on the loop's thread).

    Examples
    --------
    >>> import asyncio
    >>> from hanzo.ml.features import FeatureStore
    >>> from river import linear_model
    >>> engine = ServingEngine(FeatureStore())
    >>> engine.register("fraud", linear_model.LogisticRegression(), ["orders_24h", "order_total"],
    ...                 version="1.0.0")
    >>> request = {"customer_id": "cust_123", "order_total": 120.0}
    >>> p = asyncio.run(engine.apredict(model="fraud", features=request))
    >>> p.score, p.version, p.cached, p.features
    (0.5, '1.0.0', False, {'orders_24h': 0.0, 'order_total': 120.0})
    >>> engine.predict("fraud", request).cached
    True
    """

    def __init__(
        self,
        store: FeatureReader,
        redis_client: Any | None = None,
        key_prefix: str = "",
        registry: Any | None = None,
        max_batch: int = 64,
        cache_size: int = 10_000,
        max_inflight: int = 2,
        async_reads: bool = True,
    ) -> None:
        self.store = store
        self.redis_client = redis_client
        self.key_prefix = key_prefix
        self.registry = registry
        self.max_batch = max_batch
        self.cache_size = cache_size
        self.max_inflight = max_inflight
        self.async_reads = async_reads
        self._reset()

    def _reset(self) -> None:
        if self.max_batch < 1:
            msg = f"max_batch={self.max_batch} must be at least 1"
            raise ConfigError(msg)
        if self.max_inflight < 1:
            msg = f"max_inflight={self.max_inflight} must be at least 1"
            raise ConfigError(msg)
        self.cache = PredictionCache(self.cache_size)
        self._models: dict[str, ServedModel] = {}
        self._generation = 0
        self._pending: list[Request] = []
        self._scheduled = False
        # the store's asynchronous reader and the loop it was made on (None: reads run inline)
        self._reader: AsyncFeatureReader | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._last_sent: asyncio.Task[None] | None = None
        self._followers: dict[str, asyncio.Task[None]] = {}
        self.batches = 0
        self.store_reads = 0
        self.reloads = 0
        self.reload_errors = 0

    # -- models ---------------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        features: Sequence[str] | None = None,
        entity: str = "customer",
        version: str | None = None,
        *,
        sha256: str | None = None,
        alias: str | None = None,
    ) -> None:
        """Serve ``model`` as ``name`` (replacing what was served under that name, between batches).

        ``features`` are the model's inputs in order: those the store keeps for ``entity`` are read from
        it, the others (``order_total``...) come with each request. ``None``: every feature the store
        keeps for ``entity``.
        """
        if features is None:
            known = self.store.list_features()
            features = [f.name for f in known if f.entity == entity and f.kind != "request"]
        self._models[name] = self._entry(name, model, features, entity, version, sha256, alias)
        logger.info("serving %s@%s (%s features from %s)", name, version, len(features), entity)

    def _entry(
        self,
        name: str,
        model: Any,
        features: Sequence[str],
        entity: str,
        version: str | None,
        sha256: str | None,
        alias: str | None,
    ) -> ServedModel:
        if isinstance(features, str) or not features or not all(isinstance(f, str) for f in features):
            msg = f"model {name!r}: features must be a non-empty list of names, got {features!r}"
            raise ConfigError(msg)
        known = list(self.store.list_features())
        entities = sorted({f.entity for f in known if f.kind != "request"})
        if entity not in entities:
            msg = f"model {name!r}: the store keeps no feature of entity {entity!r}; entities: {entities}"
            raise ConfigError(msg)
        owner = {f.name: f.entity for f in known if f.kind != "request"}
        for f in features:
            if f in owner and owner[f] != entity:
                msg = f"model {name!r}: feature {f!r} belongs to entity {owner[f]!r}, not {entity!r}"
                raise ConfigError(msg)
        self._generation += 1
        return ServedModel(
            name=name,
            model=model,
            features=tuple(features),
            entity=entity,
            version=version,
            sha256=sha256,
            alias=alias,
            generation=self._generation,
            stored=tuple(f for f in features if owner.get(f) == entity),
            id_key=f"{entity}_id",
            feature_set=frozenset(features),
            scorer=scorer_for(model),
            loaded_at=time.time(),
        )

    def served(self, name: str) -> ServedModel:
        """The model served as ``name``; :class:`UnknownModelError` naming those served otherwise."""
        entry = self._models.get(name)
        if entry is None:
            served = ", ".join(sorted(self._models)) or "none"
            msg = (
                f"unknown model {name!r}; served models: {served}. Register it with engine.register(...) "
                "or follow it in the registry with engine.follow(...)"
            )
            raise UnknownModelError(msg)
        return entry

    def models(self) -> list[dict[str, Any]]:
        """Every served model's description, by name."""
        return [self._models[n].describe() for n in sorted(self._models)]

    # -- predictions ----------------------------------------------------------------------------------

    def _request(self, model: str, features: Mapping[str, Any]) -> Request:
        entry = self._models.get(model) or self.served(model)
        if type(features) is not dict and not isinstance(features, Mapping):
            msg = f"features must be a mapping of names to values, got {type(features).__name__}"
            raise ValidationError(msg)
        id_key = entry.id_key
        entity_id = features.get(id_key)
        if isinstance(entity_id, int) and not isinstance(entity_id, bool):
            entity_id = str(entity_id)
        if not isinstance(entity_id, str) or not entity_id:
            msg = (
                f"model {model!r} scores a {entry.entity}: give {id_key!r} as a non-empty string, "
                f"got {entity_id!r}"
            )
            raise ValidationError(msg)
        wanted = entry.feature_set
        values: dict[str, Any] = {}
        ignored = []
        for k, v in features.items():
            if k == id_key:
                continue
            t = type(v)
            if t is float:
                if not math.isfinite(v):
                    check_value(k, v)
            elif t is not str and t is not int and v is not None and k in wanted:
                check_value(k, v)
            if k in wanted:
                values[k] = v
            else:
                ignored.append(k)
        return Request(model, entity_id, values, tuple(ignored))

    async def apredict(self, model: str, features: Mapping[str, Any]) -> Prediction:
        """Score one entity with ``model``; ``features`` holds ``<entity>_id`` and request-time values.

        Raises :class:`UnknownModelError` for a model not served and :class:`config.errors.ValidationError`
        for a missing entity id or a bad value.
        """
        req = self._request(model, features)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        req.future = future
        self._pending.append(req)
        if len(self._pending) >= self.max_batch and self._reader_for(loop) is not None:
            self._dispatch(loop)  # a full batch starts reading at once (inline, it would answer us now)
        elif not self._scheduled:
            # the requests made during this turn of the loop go together, on the next one
            self._scheduled = True
            loop.call_soon(self._tick, loop)
        return await future

    def predict(self, model: str, features: Mapping[str, Any]) -> Prediction:
        """Score one entity now, in the calling thread (no batching); :meth:`apredict` batches on a loop.

        Raises :class:`UnknownModelError` for a model not served and
        :class:`~hanzo.ml.config.errors.ValidationError` for a missing entity id or a bad value.
        """
        result = self._process([self._request(model, features)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        self._dispatch(loop)

    def _reader_for(self, loop: asyncio.AbstractEventLoop) -> AsyncFeatureReader | None:
        """The store's asynchronous reader for ``loop`` (made on first use), ``None`` to read inline."""
        if self._reader_loop is not loop:
            make = getattr(self.store, "async_reader", None)
            old = self._reader
            self._reader = make() if self.async_reads and callable(make) else None
            self._reader_loop = loop
            if old is not None:  # made on a loop that is gone (another asyncio.run): drop its sockets
                with contextlib.suppress(Exception):
                    old.client.connection_pool.reset()
        return self._reader

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the waiting requests: inline one batch after another, or over the free read slots."""
        reader = self._reader_for(loop)
        while self._pending and len(self._inflight) < self.max_inflight:
            if reader is None:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._answer(batch, self._process(batch))
                continue
            # split what waits over the free slots, so one batch is scored while the next one reads
            free = self.max_inflight - len(self._inflight)
            size = min(self.max_batch, max(self._MIN_SPLIT, -(-len(self._pending) // free)))
            batch = self._pending[:size]
            del self._pending[:size]
            task = loop.create_task(self._read_and_answer(reader, batch, self._plan(batch), self._last_sent))
            self._last_sent = task
            self._inflight.add(task)
            task.add_done_callback(partial(self._sent, loop))

    #: Smallest batch a split makes (below it the extra round trip costs more than the overlap saves).
    _MIN_SPLIT = 8

    def _sent(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._last_sent is task:
            self._last_sent = None
        self._dispatch(loop)  # what waited for a free read slot goes now

    async def _read_and_answer(
        self,
        reader: AsyncFeatureReader,
        batch: list[Request],
        plan: _Plan,
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            rows = await self._read_plan_async(reader, plan)
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # answer batches in the order they were sent
            results = self._score_plan(batch, plan, rows)
        except Exception as exc:  # a bug in the engine: every caller of the batch gets it
            logger.exception("serving batch of %d failed", len(batch))
            results = [exc] * len(batch)
        self._answer(batch, results)

    def _answer(self, batch: Sequence[Request], results: Sequence[Prediction | BaseException]) -> None:
        for req, result in zip(batch, results, strict=True):
            fut = req.future
            if fut is None or fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _process(self, batch: Sequence[Request]) -> list[Prediction | BaseException]:
        """Read the batch's features (one store call per entity kind) and score every request."""
        try:
            plan = self._plan(batch)
            return self._score_plan(batch, plan, self._read_plan(plan))
        except Exception as exc:  # a bug in the engine: every caller of the batch gets it
            logger.exception("serving batch of %d failed", len(batch))
            return [exc] * len(batch)

    def _plan(self, batch: Sequence[Request]) -> _Plan:
        """The served models of the batch (taken now: they score it) and the reads it needs."""
        self.batches += 1
        entries: dict[str, ServedModel] = {}
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(batch):
            entry = entries.get(req.name) or self._models.get(req.name)
            if entry is None:
                continue  # unknown by now (never, unless unregistered): answered in _score_plan
            entries[req.name] = entry
            groups.setdefault(entry.entity, []).append(i)
        reads = []
        for entity, idxs in groups.items():
            names = list(dict.fromkeys(f for i in idxs for f in entries[batch[i].name].stored))
            ids = list(dict.fromkeys(batch[i].entity_id for i in idxs))
            reads.append((entity, ids, names, idxs))
        return entries, reads

    def _read_plan(self, plan: _Plan) -> list[dict[str, dict[str, float | None] | BaseException]]:
        """The store reads of a plan, one per entity kind, inline."""
        out = []
        for entity, ids, names, _ in plan[1]:
            try:
                out.append(self._read(entity, ids, names))
            except Exception as exc:  # the store failed: every request of this entity kind gets why
                out.append(dict.fromkeys(ids, exc))
        return out

    async def _read_plan_async(
        self, reader: AsyncFeatureReader, plan: _Plan
    ) -> list[dict[str, dict[str, float | None] | BaseException]]:
        """:meth:`_read_plan` through the store's asynchronous reader."""
        out = []
        for entity, ids, names, _ in plan[1]:
            try:
                out.append(await self._read_async(reader, entity, ids, names))
            except Exception as exc:
                out.append(dict.fromkeys(ids, exc))
        return out

    def _score_plan(
        self,
        batch: Sequence[Request],
        plan: _Plan,
        rows_by_read: list[dict[str, dict[str, float | None] | BaseException]],
    ) -> list[Prediction | BaseException]:
        entries, reads = plan
        results: list[Prediction | BaseException | None] = [None] * len(batch)
        # cache misses per model, scored together (a linear model scores a whole batch in one pass)
        misses: dict[str, list[tuple[int, tuple[Any, ...], dict[str, Any], tuple[Any, ...]]]] = {}
        for (_, _, _, idxs), rows in zip(reads, rows_by_read, strict=True):
            for i in idxs:
                req = batch[i]
                row = rows[req.entity_id]
                if isinstance(row, BaseException):
                    results[i] = row
                    continue
                entry = entries[req.name]
                stamp = tuple(row[n] for n in entry.stored)
                key = (entry.name, entry.generation, req.entity_id, tuple(sorted(req.values.items())))
                x = self._vector(entry, req, row)
                score = self.cache.get(key, stamp)
                if score is None:
                    misses.setdefault(req.name, []).append((i, key, x, stamp))
                else:
                    results[i] = self._prediction(entry, req, x, score, cached=True)
        for name, items in misses.items():
            entry = entries[name]
            try:
                scores = self._score_many(entry, [x for _, _, x, _ in items])
            except Exception:  # find the request that fails, score the others
                scores = None
            for n, (i, key, x, stamp) in enumerate(items):
                req = batch[i]
                try:
                    score = scores[n] if scores is not None else entry.scorer(x)
                except KeyError as exc:  # a feature the model needs was neither stored nor given
                    results[i] = ValidationError(
                        f"model {req.name!r} needs the feature {exc.args[0]!r}, which the request does not "
                        f"give and the store does not keep for {entry.entity} {req.entity_id!r}"
                    )
                    continue
                except Exception as exc:
                    exc.add_note(f"while scoring {req.entity_id!r} with model {req.name!r}")
                    results[i] = exc
                    continue
                self.cache.put(key, stamp, score)
                results[i] = self._prediction(entry, req, x, score, cached=False)
        for i, req in enumerate(batch):
            if results[i] is None and req.name not in entries:
                try:
                    self.served(req.name)
                except UnknownModelError as exc:
                    results[i] = exc
        return [r if r is not None else HanzoError("request not processed") for r in results]

    @staticmethod
    def _score_many(entry: ServedModel, xs: list[dict[str, Any]]) -> list[float]:
        many = getattr(entry.model, "score_many", None)
        if many is not None and len(xs) > 1:
            return list(many(xs))
        return [entry.scorer(x) for x in xs]

    @staticmethod
    def _vector(entry: ServedModel, req: Request, row: Mapping[str, float | None]) -> dict[str, Any]:
        x: dict[str, Any] = {}
        for n in entry.features:
            v = req.values[n] if n in req.values else row.get(n)
            if v is not None:
                x[n] = v
        return x

    @staticmethod
    def _prediction(
        entry: ServedModel, req: Request, x: dict[str, Any], score: float, cached: bool
    ) -> Prediction:
        return Prediction(
            score=score,
            model=entry.name,
            version=entry.version,
            cached=cached,
            features=x,
            entity=entry.entity,
            entity_id=req.entity_id,
            ignored=req.ignored,
        )

    def _read(
        self, entity: str, ids: list[str], names: list[str]
    ) -> dict[str, dict[str, float | None] | BaseException]:
        if not names:
            return {i: {} for i in ids}
        self.store_reads += 1
        try:
            return dict(zip(ids, self.store.get_features_batch(entity, ids, features=names), strict=True))
        except ValidationError:
            if len(ids) == 1:
                raise
        # one id the store refuses (e.g. a character its keys cannot hold) must not fail the others
        out: dict[str, dict[str, float | None] | BaseException] = {}
        for i in ids:
            self.store_reads += 1
            try:
                out[i] = self.store.get_features_batch(entity, [i], features=names)[0]
            except ValidationError as exc:
                out[i] = exc
        return out

    async def _read_async(
        self, reader: AsyncFeatureReader, entity: str, ids: list[str], names: list[str]
    ) -> dict[str, dict[str, float | None] | BaseException]:
        if not names:
            return {i: {} for i in ids}
        self.store_reads += 1
        try:
            rows = await reader.get_features_batch(entity, ids, features=names)
            return dict(zip(ids, rows, strict=True))
        except ValidationError:
            if len(ids) == 1:
                raise
        out: dict[str, dict[str, float | None] | BaseException] = {}
        for i in ids:  # as in _read: one refused id must not fail the others
            self.store_reads += 1
            try:
                out[i] = (await reader.get_features_batch(entity, [i], features=names))[0]
            except ValidationError as exc:
                out[i] = exc
        return out

    # -- score records ----------------------------------------------------------------------------------

    def lookup_score(self, model: str, subject: str) -> dict[str, Any] | None:
        """The score record the worker wrote at ``score:{model}:{subject}``, ``None`` when there is none."""
        if self.redis_client is None:
            msg = "this ServingEngine has no redis_client; pass one to look scores up"
            raise ConfigError(msg)
        key = score_key(model, subject, self.key_prefix)
        try:
            raw = self.redis_client.get(key)
        except redis.ConnectionError as exc:
            msg = f"Redis did not answer reading {key!r} ({exc}); check that it runs"
            raise ServiceUnavailableError(msg) from exc
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError as exc:
            msg = f"score record {key!r} is not JSON ({exc}); it was not written by hanzo-ml"
            raise ValidationError(msg) from exc
        return dict(record)

    # -- hot reload ---------------------------------------------------------------------------------------

    async def reload(
        self,
        name: str,
        alias: str = "production",
        *,
        features: Sequence[str] | None = None,
        entity: str | None = None,
    ) -> bool:
        """Serve the version ``alias`` points to, if it is not the one served; True when it swapped.

        The manifest is read and the artifact loaded (verified) in a thread; the swap itself is one
        assignment on the loop's thread. Features default to those served, else the version's
        ``features`` metadata.
        """
        if self.registry is None:
            msg = "this ServingEngine has no registry; pass registry=RegistryReader(...) to follow models"
            raise ConfigError(msg)
        record = await asyncio.to_thread(self.registry.show, name, alias)
        current = self._models.get(name)
        if current is not None and (current.version, current.sha256) == (record.version, record.sha256):
            return False
        started = time.perf_counter()
        model, loaded = await asyncio.to_thread(self.registry.load_version, name, record.version)
        names = features or (current.features if current else None) or loaded.metadata.get("features")
        if not names:
            msg = f"{name}@{loaded.version} has no 'features' in its metadata; pass features= to follow()"
            raise ConfigError(msg)
        ent = entity or (current.entity if current is not None else "customer")
        entry = self._entry(name, model, list(names), ent, loaded.version, loaded.sha256, alias)
        self._models[name] = entry  # the swap: batches run without yielding, so never inside one
        self.reloads += 1
        logger.info(
            "serving %s@%s (%s=%s, was %s) loaded in %.1f ms",
            name,
            loaded.version,
            alias,
            loaded.version,
            current.version if current else None,
            (time.perf_counter() - started) * 1e3,
        )
        return True

    def follow(
        self,
        name: str,
        alias: str = "production",
        every_s: float = 1.0,
        *,
        features: Sequence[str] | None = None,
        entity: str | None = None,
    ) -> asyncio.Task[None]:
        """Poll the registry every ``every_s`` seconds and serve whatever ``alias`` points to.

        Call it from the running event loop; it returns the polling task (:meth:`close` stops it). A
        failing poll (registry unreachable, integrity error) is logged and the current version stays.
        """
        if self.registry is None:
            msg = "this ServingEngine has no registry; pass registry=RegistryReader(...) to follow models"
            raise ConfigError(msg)
        old = self._followers.pop(name, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(
            self._follow(name, alias, every_s, features, entity), name=f"follow:{name}:{alias}"
        )
        self._followers[name] = task
        return task

    async def _follow(
        self, name: str, alias: str, every_s: float, features: Sequence[str] | None, entity: str | None
    ) -> None:
        last_error = ""
        while True:
            try:
                await self.reload(name, alias, features=features, entity=entity)
                last_error = ""
            except Exception as exc:  # keep serving the current version; say why once per new reason
                self.reload_errors += 1
                reason = str(exc).split(";")[0]  # not the list of versions that follows, which grows
                if reason != last_error:
                    last_error = reason
                    logger.error(
                        "following %s@%s failed, still serving %s: %s",
                        name,
                        alias,
                        self._models[name].version if name in self._models else None,
                        exc,
                    )
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        """Stop following the registry, answer the requests still waiting, close the async reader."""
        tasks = list(self._followers.values())
        self._followers.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        while self._inflight or self._pending:
            if self._inflight:
                await asyncio.wait(list(self._inflight))
                await asyncio.sleep(0)  # let the done callbacks answer and send what waited
            else:
                self._dispatch(asyncio.get_running_loop())
        if self._reader is not None:
            await self._reader.aclose()
        self._reader = self._reader_loop = None
