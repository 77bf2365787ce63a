"""A hot entity over 90 days of event time on a real redis-server: exact, and its written fields stay small.

Before the archive (features/entity.lua), every record a windowed group kept for the lateness stayed in
the group's hash field, which each event rewrites: the per-event cost grew with the history. These tests
drive one customer through 90 days with the shipped definitions, some events days late and some reads in
the past, against the in-memory store, and check that the fields stay bounded while the archive holds the
rest, in the entity's hash slot and with its TTL.
"""

from __future__ import annotations

import math
import random
import struct

import pytest
import redis
from redis.crc import key_slot

from hanzo.ml.features import (
    EventRecord,
    FeatureStore,
    InMemoryOnlineStore,
    RedisOnlineStore,
    load_definitions,
)
from hanzo.ml.features.lua import groups
from tests.feature_store_suite import DAY, METHODS, MIN, T0, Clock, order, ticket

pytestmark = pytest.mark.integration

LATENESS = 5 * DAY
#: Records at or below E a windowed field keeps before the oldest go to the archive (entity.lua SPILL_AT).
SPILL_AT = 64
BATCH = 50


def _close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def _hot_stream(days: int, every_ms: int, seed: int) -> list[EventRecord]:
    """One customer: an order every ``every_ms``, a ticket now and then, some events up to 4 days late."""
    rng = random.Random(seed)
    records: list[EventRecord] = []
    t = T0
    for i in range(days * DAY // every_ms):
        t += every_ms
        ts = t - rng.randrange(DAY, 4 * DAY) if i % 40 == 39 else t
        if i % 9 == 0:
            records.append(
                EventRecord(
                    ticket(f"e{i}", ts, "hot", rng.choice(["support_ticket", "refund"])), "events", 0, i
                )
            )
        else:
            o = order(f"o{i}", ts, round(rng.uniform(1, 500), 2), "hot", rng.choice(METHODS))
            country = rng.choice(["DE", "FR", "NL"])
            records.append(EventRecord(o.model_copy(update={"shipping_country": country}), "orders", 0, i))
    return records


def test_hot_customer_over_90_days_matches_memory_with_bounded_fields(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    defs = [a for a in load_definitions() if a.entity == "customer"]
    clock = Clock()
    backend = RedisOnlineStore(redis_client, key_prefix)
    store = FeatureStore(defs, backend=backend, clock=clock, allowed_lateness_ms=LATENESS)
    oracle = FeatureStore(defs, backend=InMemoryOnlineStore(), clock=clock, allowed_lateness_ms=LATENESS)
    records = _hot_stream(90, 30 * MIN, seed=7)
    base = backend.entity_key("customer", "hot")
    windowed = [g for g in groups(store._plans["customer"]) if g.kind == "w"]
    largest = 0
    rng = random.Random(1)
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        clock.now += 1
        got = store.apply_batch("customer", batch)
        want = oracle.apply_batch("customer", batch)
        assert [r.status for r in got] == [r.status for r in want], start
        for g, w in zip(got, want, strict=True):
            bad = [k for k in g.features if not _close(g.features[k], w.features[k])]
            assert not bad, (start, g.index, g.status, bad)
        newest = max(r.event.event_time for r in records[: start + BATCH])
        for as_of in (None, newest - rng.randrange(0, LATENESS)):  # reads reaching into the archive
            rows = store.get_features_batch("customer", ["hot"], as_of_ms=as_of)
            expected = oracle.get_features_batch("customer", ["hot"], as_of_ms=as_of)
            assert all(_close(rows[0][k], expected[0][k]) for k in rows[0]), (start, as_of)
        for g in windowed:  # R, the field's records at or below E (kept for the lateness)
            text = redis_client.hget(base, g.field)
            if text is not None:
                largest = max(largest, int(struct.unpack_from("<dd", text)[1]))
    statuses = {r.status for r in store.apply_batch("customer", records[:50])}
    assert statuses == {"fenced"}
    # after every call a field keeps at most SPILL_AT records beyond its window, after 90 days too
    # (without the archive it kept every record of the lateness: 213 here)
    assert SPILL_AT // 2 < largest <= SPILL_AT
    archives = sorted(k.decode() for k in redis_client.scan_iter(match=f"{base}:z:*"))
    assert f"{base}:z:orders_1h+spend_1h" in archives
    entity_ttl = store.entity_ttl_ms
    for key in archives:
        assert key_slot(key.encode()) == key_slot(base.encode())
        assert 0 < redis_client.pttl(key) <= entity_ttl
        # the archive was trimmed to the lateness: nothing far older than the retention cut is left
        oldest = redis_client.zrange(key, 0, 0, withscores=True)
        group = next(g for g in windowed if key.endswith(f":z:{g.field}"))
        cut = (newest - LATENESS) // group.bucket_ms - group.n_buckets
        assert oldest and oldest[0][1] > cut - 2 * SPILL_AT
