"""The shared feature-store suite on a real redis-server, plus the Redis layout, scripts and round trips."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from hanzo.ml.features import (
    Aggregate,
    EventRecord,
    FeatureStore,
    InMemoryOnlineStore,
    RedisOnlineStore,
    load_definitions,
)
from hanzo.ml.features.luagen import INLINE_GROUPS
from hanzo.ml.features.redis_store import EVENTS_PER_CALL
from hanzo.ml.schemas.events import OrderItem
from tests.chaos_support import wait_for
from tests.feature_store_suite import (
    AGGS,
    DAY,
    HOUR,
    METHODS,
    T0,
    Clock,
    FeatureStoreSuite,
    FreshnessSuite,
    order,
    ticket,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(redis_client: redis.Redis, key_prefix: str, clock: Clock) -> Callable[..., FeatureStore]:
    def make(definitions=AGGS, **kwargs) -> FeatureStore:  # type: ignore[no-untyped-def]
        return FeatureStore(
            definitions, backend=RedisOnlineStore(redis_client, key_prefix), clock=clock, **kwargs
        )

    return make


class TestRedisStore(FeatureStoreSuite, FreshnessSuite):
    pass


class CountingClient:
    """A real client whose round trips are counted: one per pipeline execute, one per direct command."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.client.pipeline(transaction=transaction)
        execute = pipe.execute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return execute(*args, **kwargs)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return attr(*args, **kwargs)

        return counted


def evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_one_round_trip_per_batch_and_per_read(
    redis_client: redis.Redis, key_prefix: str, clock: Clock
) -> None:
    counting = CountingClient(redis_client)
    store = FeatureStore(AGGS, backend=RedisOnlineStore(counting, key_prefix), clock=clock)  # type: ignore[arg-type]
    store.apply_batch("customer", [EventRecord(order("warm", T0, customer="w"))])  # loads the scripts
    store.get_features(customer_id="w")
    counting.round_trips = 0
    calls = evalsha_calls(redis_client)
    batch = [
        EventRecord(order(f"o{i}", T0 + i * 1000, customer=f"c{i % 7}"), "orders", 0, i) for i in range(200)
    ]
    results = store.apply_batch("customer", batch)
    assert [r.status for r in results] == ["applied"] * 200
    assert counting.round_trips == 1
    # the 200 events went in script calls of up to EVENTS_PER_CALL events (2 with the default of 100)
    assert evalsha_calls(redis_client) - calls == -(-200 // EVENTS_PER_CALL)
    counting.round_trips = 0
    store.get_features(customer_id="c3")
    assert counting.round_trips == 1
    counting.round_trips = 0
    rows = store.get_features_batch("customer", [f"c{i}" for i in range(7)], features=["n_1h"])
    assert counting.round_trips == 1 and sum(r["n_1h"] for r in rows) == 200


def test_scripts_are_reloaded_after_script_flush(
    make_store: Callable[..., FeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store()
    store.apply_batch("customer", [EventRecord(order("a", T0, 2.0), "orders", 0, 0)])
    redis_client.script_flush()
    out = store.apply_batch("customer", [EventRecord(order("b", T0 + 1, 3.0), "orders", 0, 1)])
    assert out[0].status == "applied" and out[0].features["spend_life"] == 5.0
    redis_client.script_flush()
    assert store.get_features(customer_id="c1", features=["spend_life"]) == {"spend_life": 5.0}


def test_a_batch_of_many_calls_is_reloaded_after_script_flush_in_order(
    make_store: Callable[..., FeatureStore], redis_client: redis.Redis, clock: Clock
) -> None:
    """NOSCRIPT on a streamed batch (several calls in flight): every call runs once, in order."""
    store = make_store()
    memory = FeatureStore(AGGS, backend=InMemoryOnlineStore(), clock=clock)
    warm = [EventRecord(order("w", T0, 1.0, customer="c0"), "orders", 0, 0)]
    store.apply_batch("customer", warm)
    memory.apply_batch("customer", warm)
    redis_client.script_flush()
    batch = [
        EventRecord(order(f"o{i}", T0 + i * 1000, 1.0 + i, customer=f"c{i % 3}"), "orders", 0, i + 1)
        for i in range(5 * EVENTS_PER_CALL + 7)
    ]
    got = [(r.entity_id, r.status, r.features) for r in store.apply_batch("customer", batch)]
    assert got == [(r.entity_id, r.status, r.features) for r in memory.apply_batch("customer", batch)]
    assert {s for _, s, _ in got} == {"applied"}


def window_state(
    state: bytes, acc_doubles: int = 1, cell_doubles: int = 1
) -> tuple[list[float], list[tuple[float, ...]]]:
    """Decode a windowed group field: ``([E, R, running values...], [(bucket index, cells...), ...])``."""
    head = 8 * (2 + acc_doubles)
    header = list(struct.unpack(f"<{2 + acc_doubles}d", state[:head]))
    recs = struct.unpack(f"<{(len(state) - head) // 8}d", state[head:])
    w = 1 + cell_doubles
    return header, [(int(recs[j]), *recs[j + 1 : j + w]) for j in range(0, len(recs), w)]


def test_key_layout_hash_tag_and_ttls(
    make_store: Callable[..., FeatureStore], redis_client: redis.Redis, key_prefix: str
) -> None:
    store = make_store(entity_ttl_ms=100 * DAY)
    store.apply_batch("customer", [EventRecord(order("o1", T0, 2.0, method="card"), "orders", 3, 17)])
    base = f"{key_prefix}f:{{customer:c1}}"
    keys = sorted(k.decode() for k in redis_client.scan_iter(match=f"{key_prefix}*"))
    assert keys == [base, f"{base}:d:o1"]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    raw = redis_client.hgetall(base)
    assert raw[b"@orders/3"] == b"17"
    assert raw[b"_t"] == str(T0).encode() and raw[b"_e"] == str(T0).encode() and int(raw[b"_u"]) == T0
    # spend_24h and last_24h read the same field of every order: one bucket list, cells (sum, t, value)
    header, records = window_state(raw[b"spend_24h+last_24h"], cell_doubles=3)
    assert header[1:] == [0.0, 2.0]  # no bucket kept only for the lateness; window sum 2
    assert records == [(T0 // (15 * 60_000), 2.0, float(T0), 2.0)]
    header, records = window_state(raw[b"min_7d+max_7d"], acc_doubles=2, cell_doubles=2)
    assert header[1:] == [0.0, 2.0, 2.0] and records == [(T0 // HOUR, 2.0, 2.0)]
    assert window_state(raw[b"n_1h"])[1] == [(T0 // 60_000, 1.0)]
    # every lifetime aggregate in one field: since_last (latest event ms), spend_life
    assert struct.unpack("<dd", raw[b"since_last+spend_life"]) == (float(T0), 2.0)
    assert b"tickets_30d" not in raw  # no customer event yet
    distinct = raw[b"pm_7d"].split(b"\x1c")  # E, members with their bucket counts, newest, older, kept
    assert distinct[1:4] == [b"card\x1d1", f"{T0 // HOUR}=card".encode(), b""]
    assert 99 * DAY < redis_client.pttl(base) <= 100 * DAY
    mark_ttl = 30 * DAY + 3_600_000  # longest window + default lateness
    assert mark_ttl - 60_000 < redis_client.pttl(f"{base}:d:o1") <= mark_ttl


def test_expired_buckets_are_deleted_from_the_hash(
    make_store: Callable[..., FeatureStore], redis_client: redis.Redis, key_prefix: str
) -> None:
    store = make_store(allowed_lateness_ms=HOUR)
    records = [EventRecord(order(f"o{i}", T0 + i * 20 * 60_000, 1.0), "orders", 0, i) for i in range(30)]
    store.apply_batch("customer", records)
    base = f"{key_prefix}f:{{customer:c1}}"
    # kept: the last 60 min of window + 60 min of lateness; one order every 20 min -> 0, -20, ..., -100 min
    last = (T0 + 29 * 20 * 60_000) // 60_000
    header, kept = window_state(redis_client.hget(base, "n_1h"))
    assert [i for i, _ in kept] == [last - 100 + 20 * k for k in range(6)]
    assert header[1:] == [3.0, 3.0]  # 3 buckets older than the window, 3 orders in it
    before = len(window_state(redis_client.hget(base, "spend_24h+last_24h"), cell_doubles=3)[1])
    store.apply_batch("customer", [EventRecord(order("late", T0 + 40 * DAY, 1.0), "orders", 0, 99)])
    after = window_state(redis_client.hget(base, "spend_24h+last_24h"), cell_doubles=3)[1]
    assert before > 1 and len(after) == 1
    assert window_state(redis_client.hget(base, "n_1h"))[1] == [((T0 + 40 * DAY) // 60_000, 1.0)]


def test_redis_and_memory_agree_on_a_random_stream(
    make_store: Callable[..., FeatureStore], clock: Clock
) -> None:
    rng = random.Random(3)
    records = []
    for i in range(300):
        t = T0 + rng.randrange(0, 10 * DAY)
        c = f"c{rng.randrange(4)}"
        if rng.random() < 0.2:
            records.append(EventRecord(ticket(f"e{i}", t, c), "events", 0, i))
        else:
            records.append(
                EventRecord(order(f"o{i}", t, rng.uniform(1, 99), c, rng.choice(METHODS)), "orders", 0, i)
            )
        if rng.random() < 0.05:
            records.append(records[rng.randrange(len(records))])  # re-deliveries
    redis_store = make_store(allowed_lateness_ms=2 * DAY)
    memory_store = FeatureStore(AGGS, backend=InMemoryOnlineStore(), clock=clock, allowed_lateness_ms=2 * DAY)
    for entity in ("customer", "product"):
        got = redis_store.apply_batch(entity, records)
        want = memory_store.apply_batch(entity, records)
        assert [r.status for r in got] == [r.status for r in want]
        assert {r.status for r in got} == {"applied", "late", "fenced"}
        for g, w in zip(got, want, strict=True):
            assert g.features == pytest.approx(w.features), (g.index, g.status)
        ids = sorted({r.entity_id for r in got})
        for as_of in (None, T0 + 5 * DAY):
            rows = redis_store.get_features_batch(entity, ids, as_of_ms=as_of)
            expected = memory_store.get_features_batch(entity, ids, as_of_ms=as_of)
            for row, want_row in zip(rows, expected, strict=True):
                assert row == pytest.approx(want_row)


def _long_stream(seed: int, n: int) -> list[EventRecord]:
    """Orders and customer events, mostly in order, some out of order or too late, some re-delivered."""
    rng = random.Random(seed)
    records: list[EventRecord] = []
    t = T0
    for i in range(n):
        r = rng.random()
        if r < 0.7:
            t += rng.randrange(0, 40 * 60_000)
        ts = t - (rng.randrange(0, 3 * DAY) if r > 0.9 else rng.randrange(0, 2 * HOUR) if r > 0.7 else 0)
        c = f"c{rng.randrange(8)}"
        if rng.random() < 0.25:
            kind = rng.choice(["support_ticket", "page_view", "refund", "add_to_cart", "chargeback"])
            ev = ticket(f"e{i}", ts, c, kind).model_copy(update={"product_id": f"p{rng.randrange(4)}"})
            records.append(EventRecord(ev, "events", rng.randrange(2), i))
        else:
            items = [
                OrderItem(
                    product_id=f"p{rng.randrange(4)}",
                    category=rng.choice(["books", "toys"]),
                    quantity=rng.randrange(1, 4),
                    unit_price=round(rng.uniform(0.5, 99), 2),
                )
                for _ in range(rng.randrange(1, 4))
            ]
            total = round(rng.uniform(0.01, 999), 2)
            o = order(f"o{i}", ts, total, c, rng.choice(METHODS), items=items)
            records.append(EventRecord(o, "orders", rng.randrange(2), i))
        if rng.random() < 0.05:
            records.append(records[rng.randrange(len(records))])  # re-delivery: fenced
        if rng.random() < 0.03:  # the same event id from another partition: duplicate
            records.append(EventRecord(records[rng.randrange(len(records))].event, "orders", 5, i))
    return records


def _close(got: dict[str, float | None], want: dict[str, float | None]) -> bool:
    """Same names, same None, numbers equal but for the order of float additions."""
    return got.keys() == want.keys() and all(
        (got[k] is None) == (want[k] is None)
        and (got[k] is None or math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-9))  # type: ignore[arg-type]
        for k in got
    )


#: Every numeric kind in one windowed group and in the lifetime group (the update script's generated code
#: for each group, features/luagen.py, has one path per kind; the shipped definitions and AGGS miss some).
EVERY_KIND = tuple(
    Aggregate(
        name=f"{kind}_{window or 'life'}",
        entity="customer",
        source="orders",
        field=None if kind in ("count", "time_since_last") else "total",
        aggregation=kind,
        window=window,
    )
    for window in ("1h", "lifetime")
    for kind in ("count", "sum", "mean", "min", "max", "last", "time_since_last")
)


@pytest.mark.parametrize(
    ("definitions", "lateness"), [(AGGS, 2 * HOUR), (None, 30 * DAY), (None, 0), (EVERY_KIND, 2 * HOUR)]
)
def test_grouped_layout_matches_memory_on_a_long_disordered_stream(
    make_store: Callable[..., FeatureStore], clock: Clock, definitions: Any, lateness: int
) -> None:
    """Shared bucket lists, the lifetime field and distinct fields give the in-memory store's answers."""
    defs = definitions if definitions is not None else load_definitions()
    records = _long_stream(11, 2500)
    redis_store = make_store(defs, allowed_lateness_ms=lateness)
    memory_store = FeatureStore(
        defs, backend=InMemoryOnlineStore(), clock=clock, allowed_lateness_ms=lateness
    )
    seen: set[str] = set()
    for entity in redis_store.entities:
        for start in range(0, len(records), 211):
            batch = records[start : start + 211]
            clock.now += 60
            got = redis_store.apply_batch(entity, batch)
            want = memory_store.apply_batch(entity, batch)
            assert [r.status for r in got] == [r.status for r in want], (entity, start)
            seen |= {r.status for r in got}
            for g, w in zip(got, want, strict=True):
                assert _close(g.features, w.features), (entity, g.index, g.status)
            ids = sorted({r.entity_id for r in got}) + ["nobody"]
            names = [n for n in got[0].features][::3] if got else None
            for as_of in (None, batch[0].event.event_time - 2 * DAY):
                for features in (None, names):
                    rows = redis_store.get_features_batch(entity, ids, features=features, as_of_ms=as_of)
                    expected = memory_store.get_features_batch(entity, ids, features=features, as_of_ms=as_of)
                    assert all(map(_close, rows, expected)), (entity, start, as_of)
    assert seen >= {"applied", "duplicate", "fenced"} and ("late" in seen) == (lateness < 30 * DAY)


async def test_async_reader_reads_what_the_sync_read_does(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, clock: Clock
) -> None:
    """The serving engine's asyncio read path: same rows as the sync read, NOSCRIPT handled, closed."""
    name = f"{key_prefix}async-reader"  # names the reader's connections in CLIENT LIST
    backend = RedisOnlineStore(
        redis_client,
        key_prefix,
        async_factory=lambda: redis.asyncio.Redis.from_url(redis_url, client_name=name),
    )
    store = FeatureStore(load_definitions(), backend=backend, clock=clock)
    records = _long_stream(5, 600)
    for entity in store.entities:
        store.apply_batch(entity, records)
    reader = store.async_reader()
    assert reader is not None
    ids = sorted({r.event.customer_id for r in records}) + ["nobody"]
    names = [f.name for f in store.list_features() if f.entity == "customer" and f.kind != "request"]
    redis_client.script_flush()  # the async path loads the read script itself
    for features in (None, names[::2], names[-3:]):
        for as_of in (None, T0 + DAY):
            want = store.get_features_batch("customer", ids, features=features, as_of_ms=as_of)
            got = await reader.get_features_batch("customer", ids, features=features, as_of_ms=as_of)
            assert got == want and len(got) == len(ids)
    assert any(row != got[-1] for row in got[:-1])  # known customers differ from the unknown one

    def reader_connections() -> int:
        return sum(c.get("name") == name for c in redis_client.client_list())

    assert reader_connections() == 1
    await reader.aclose()
    # the server frees a closed client at the end of its event-loop pass, so CLIENT LIST can still show
    # it for a moment after the socket closed: wait for it to go, rather than read the count once
    wait_for("the async reader's connection to close", lambda: reader_connections() == 0, timeout=10)
    # the in-memory store and a store without a factory read inline
    assert FeatureStore(backend=RedisOnlineStore(redis_client, key_prefix)).async_reader() is None


@pytest.mark.parametrize("n", [INLINE_GROUPS, INLINE_GROUPS + 1, 240])
def test_an_entity_of_many_groups_is_updated_and_read(
    make_store: Callable[..., FeatureStore], n: int
) -> None:
    """The update script unpacks an event's inputs into Lua locals up to INLINE_GROUPS, else into a table."""
    counts = [
        Aggregate(
            name=f"n{i}",
            entity="customer",
            source="orders",
            aggregation="count",
            window=f"{i + 1}m",
            bucket="1m",
        )
        for i in range(n)
    ]
    store = make_store(counts)
    records = [EventRecord(order(f"o{i}", T0 + i * 60_000), "orders", 0, i) for i in range(3)]
    out = store.apply_batch("customer", records)
    assert [r.status for r in out] == ["applied"] * 3
    want = {a.name: min(3, i + 1) for i, a in enumerate(counts)}
    assert out[-1].features == want
    assert store.get_features(customer_id="c1", as_of_ms=T0 + 2 * 60_000) == want
