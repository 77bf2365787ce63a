"""The shared feature-store suite on the in-memory backend, plus what only it can show (wall-clock TTLs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hanzo.ml.features import EventRecord, FeatureStore, InMemoryOnlineStore
from tests.feature_store_suite import AGGS, DAY, T0, Clock, FeatureStoreSuite, FreshnessSuite, order


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(clock: Clock) -> Callable[..., FeatureStore]:
    def make(definitions=AGGS, **kwargs) -> FeatureStore:  # type: ignore[no-untyped-def]
        return FeatureStore(definitions, backend=InMemoryOnlineStore(), clock=clock, **kwargs)

    return make


class TestInMemoryStore(FeatureStoreSuite, FreshnessSuite):
    pass


def test_idle_entity_expires_after_its_ttl(clock: Clock) -> None:
    store = FeatureStore(AGGS, backend=InMemoryOnlineStore(), clock=clock, entity_ttl_ms=40 * DAY)
    store.apply_batch("customer", [EventRecord(order("a", T0, 5.0), "orders", 0, 0)])
    clock.now += 39 * 86400
    assert store.get_features(customer_id="c1", features=["spend_life"]) == {"spend_life": 5.0}
    clock.now += 2 * 86400
    assert store.get_features(customer_id="c1", features=["spend_life"]) == {"spend_life": 0.0}
    # with the state gone, so is the fence: the same offset applies again
    again = store.apply_batch("customer", [EventRecord(order("b", T0, 1.0), "orders", 0, 0)])
    assert again[0].status == "applied"


def test_dedupe_marks_expire(clock: Clock) -> None:
    backend = InMemoryOnlineStore()
    store = FeatureStore(AGGS, backend=backend, clock=clock)
    store.apply_batch("customer", [EventRecord(order("a", T0, 5.0))])
    assert backend.expire_marks(int(clock.now * 1000)) == 0
    clock.now += 31 * 86400
    assert backend.expire_marks(int(clock.now * 1000)) == 1
