"""One behaviour suite for every online store: subclass FeatureStoreSuite and give a `make_store` fixture.

`make_store(definitions=None, **kwargs)` returns a FeatureStore on the backend under test whose wall clock is
`clock` (a `Clock` fixture the subclass shares). Expected values are recomputed here from the raw events,
independently of the store's code, with the rules of features/windows.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features import Aggregate, EventRecord, FeatureStore
from hanzo.ml.schemas.events import CustomerEvent, Order, OrderItem

T0 = 1_700_000_000_000
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

AGGS = (
    Aggregate(name="n_1h", entity="customer", source="orders", aggregation="count", window="1h"),
    Aggregate(
        name="spend_24h", entity="customer", source="orders", field="total", aggregation="sum", window="24h"
    ),
    Aggregate(
        name="aov_30d", entity="customer", source="orders", field="total", aggregation="mean", window="30d"
    ),
    Aggregate(
        name="min_7d", entity="customer", source="orders", field="total", aggregation="min", window="7d"
    ),
    Aggregate(
        name="max_7d", entity="customer", source="orders", field="total", aggregation="max", window="7d"
    ),
    Aggregate(
        name="pm_7d",
        entity="customer",
        source="orders",
        field="payment_method",
        aggregation="distinct_count",
        window="7d",
    ),
    Aggregate(
        name="last_24h", entity="customer", source="orders", field="total", aggregation="last", window="24h"
    ),
    Aggregate(name="since_last", entity="customer", source="orders", aggregation="time_since_last"),
    Aggregate(
        name="since_last_6h", entity="customer", source="orders", aggregation="time_since_last", window="6h"
    ),
    Aggregate(name="spend_life", entity="customer", source="orders", field="total", aggregation="sum"),
    Aggregate(
        name="tickets_30d",
        entity="customer",
        source="customer_events",
        aggregation="count",
        window="30d",
        where='type == "support_ticket"',
    ),
    Aggregate(
        name="units_24h",
        entity="product",
        source="orders",
        field="items.quantity",
        aggregation="sum",
        window="24h",
    ),
)
BY_NAME = {a.name: a for a in AGGS}
LATENESS = 2 * HOUR
METHODS = ("card", "paypal", "bank_transfer", "gift_card")


class Clock:
    """A settable wall clock in seconds."""

    def __init__(self, now: float = T0 / 1000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def order(
    oid: str, t: int, total: float = 10.0, customer: str = "c1", method: str = "card", **kw: object
) -> Order:
    items = kw.pop("items", None) or [
        OrderItem(product_id="p1", category="books", quantity=1, unit_price=total)
    ]
    return Order(
        order_id=oid,
        customer_id=customer,
        event_time=t,
        items=items,
        total=total,
        currency="EUR",
        payment_method=method,
        billing_country="DE",
        shipping_country="DE",
        channel="web",
    )


def ticket(eid: str, t: int, customer: str = "c1", kind: str = "support_ticket") -> CustomerEvent:
    return CustomerEvent(event_id=eid, customer_id=customer, event_time=t, type=kind)  # type: ignore[arg-type]


@dataclass
class Seen:
    t: int
    total: float
    method: str
    seq: int


def expected(name: str, events: list[Seen], t: int, scoring: bool = False) -> float | None:
    """Recompute one customer-order aggregate as of t from raw events (the rule of features/windows.py)."""
    a = BY_NAME[name]
    if a.window_ms is None:
        chosen = events
    else:
        b = a.bucket_ms
        hi = t // b
        chosen = [e for e in events if hi - a.n_buckets < e.t // b <= hi]
    kind = a.aggregation
    if kind == "count":
        return float(len(chosen))
    if kind == "sum":
        return sum(e.total for e in chosen)
    if kind == "distinct_count":
        return float(len({e.method for e in chosen}))
    if not chosen:
        return -1.0 if kind == "time_since_last" else None
    if kind == "mean":
        return sum(e.total for e in chosen) / len(chosen)
    if kind == "min":
        return min(e.total for e in chosen)
    if kind == "max":
        return max(e.total for e in chosen)
    if kind == "last":
        return max(chosen, key=lambda e: (e.t, e.seq)).total
    latest = max(e.t for e in chosen)  # time_since_last
    return max(0, t - latest) / 1000


ORDER_FEATURES = [a.name for a in AGGS if a.source == "orders" and a.entity == "customer"]
MakeStore = Callable[..., FeatureStore]


class FeatureStoreSuite:
    """Behaviour every backend must show. Subclasses provide `make_store` and `clock` fixtures."""

    def test_values_match_recomputation_from_raw_events(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        rng = random.Random(7)
        customers = ["c1", "c2", "c3"]
        times = sorted(rng.sample(range(T0, T0 + 12 * DAY, 7_919), 400))
        # local disorder: swap neighbours, so some events arrive a little late (well within the lateness)
        for i in range(0, len(times) - 1, 5):
            times[i], times[i + 1] = times[i + 1], times[i]
        applied: dict[str, list[Seen]] = {c: [] for c in customers}
        records = []
        for i, t in enumerate(times):
            c = customers[rng.randrange(3)]
            total = round(rng.uniform(1, 300), 2)
            method = rng.choice(METHODS)
            records.append(EventRecord(order(f"o{i}", t, total, c, method), "orders", 0, i))
        for start in range(0, len(records), 64):
            batch = records[start : start + 64]
            for r in store.apply_batch("customer", batch):
                ev = batch[r.index].event
                assert isinstance(ev, Order)
                assert r.status == "applied" and r.entity_id == ev.customer_id
                before = list(applied[ev.customer_id])
                applied[ev.customer_id].append(
                    Seen(ev.event_time, ev.total, ev.payment_method, r.index + start)
                )
                for name in ORDER_FEATURES:
                    scored_before = BY_NAME[name].aggregation == "time_since_last"
                    events = before if scored_before else applied[ev.customer_id]
                    want = expected(name, events, ev.event_time)
                    assert r.features[name] == pytest.approx(want), (name, ev.order_id)
        for c in customers:
            got = store.get_features(customer_id=c, features=ORDER_FEATURES)
            latest = max(e.t for e in applied[c])
            for name in ORDER_FEATURES:
                assert got[name] == pytest.approx(expected(name, applied[c], latest)), name
            as_of = latest + 20 * HOUR
            got = store.get_features(customer_id=c, features=ORDER_FEATURES, as_of_ms=as_of)
            for name in ORDER_FEATURES:
                assert got[name] == pytest.approx(expected(name, applied[c], as_of)), name

    def test_out_of_order_event_within_lateness_goes_to_its_bucket(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        store.apply_batch("customer", [EventRecord(order("a", T0 + 3 * HOUR, 5.0), "orders", 0, 0)])
        r = store.apply_batch("customer", [EventRecord(order("b", T0 + 90 * MIN, 7.0), "orders", 0, 1)])[0]
        assert r.status == "applied"
        assert r.features["n_1h"] == 1.0  # as of its own time: only itself in the last hour
        assert r.features["spend_life"] == 12.0
        assert store.get_features(customer_id="c1", features=["n_1h"]) == {"n_1h": 1.0}
        got = store.get_features(customer_id="c1", features=["n_1h", "spend_24h"], as_of_ms=T0 + 2 * HOUR)
        assert got == {"n_1h": 1.0, "spend_24h": 7.0}

    def test_too_late_event_is_counted_and_not_applied(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        store.apply_batch("customer", [EventRecord(order("a", T0 + 5 * HOUR, 5.0), "orders", 0, 0)])
        before = store.get_features(customer_id="c1")
        r = store.apply_batch(
            "customer", [EventRecord(order("b", T0 + 5 * HOUR - LATENESS - 1, 7.0), "orders", 0, 1)]
        )
        assert [x.status for x in r] == ["late"]
        assert store.status_counts["late"] == 1
        assert store.get_features(customer_id="c1") == before
        edge = store.apply_batch(
            "customer", [EventRecord(order("c", T0 + 5 * HOUR - LATENESS, 1.0), "orders", 0, 2)]
        )
        assert edge[0].status == "applied"

    def test_duplicate_event_id_at_another_offset_changes_nothing(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        ev = order("a", T0, 5.0)
        assert store.apply_batch("customer", [EventRecord(ev, "orders", 0, 10)])[0].status == "applied"
        before = store.get_features(customer_id="c1")
        again = store.apply_batch(
            "customer", [EventRecord(ev, "orders", 0, 11), EventRecord(ev, "orders", 3, 0)]
        )
        assert [r.status for r in again] == ["duplicate", "duplicate"]
        assert again[0].features["spend_life"] == 5.0
        assert store.get_features(customer_id="c1") == before

    def test_redelivered_offsets_are_fenced(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        batch = [EventRecord(order(f"o{i}", T0 + i * MIN, 1.0), "orders", 2, 100 + i) for i in range(3)]
        assert [r.status for r in store.apply_batch("customer", batch)] == ["applied"] * 3
        before = store.get_features(customer_id="c1")
        replay = store.apply_batch("customer", batch)
        assert [r.status for r in replay] == ["fenced"] * 3
        # a new event id at an old offset of the same partition is fenced too; another partition is not
        other = order("new", T0 + 10 * MIN, 50.0)
        assert store.apply_batch("customer", [EventRecord(other, "orders", 2, 101)])[0].status == "fenced"
        assert store.get_features(customer_id="c1") == before
        assert store.apply_batch("customer", [EventRecord(other, "orders", 1, 0)])[0].status == "applied"
        assert store.get_features(customer_id="c1", features=["spend_life"]) == {"spend_life": 53.0}

    def test_records_without_offsets_skip_the_fence(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)
        out = store.apply_batch("customer", [EventRecord(order("a", T0)), EventRecord(order("b", T0 + 1))])
        assert [r.status for r in out] == ["applied", "applied"]

    def test_old_buckets_leave_the_window_and_are_removed(self, make_store: MakeStore) -> None:
        store = make_store(AGGS, allowed_lateness_ms=LATENESS)
        store.apply_batch("customer", [EventRecord(order("a", T0, 5.0), "orders", 0, 0)])
        assert store.get_features(customer_id="c1", features=["spend_24h"], as_of_ms=T0 + HOUR) == {
            "spend_24h": 5.0
        }
        later = T0 + 3 * DAY
        r = store.apply_batch("customer", [EventRecord(order("b", later, 7.0), "orders", 0, 1)])[0]
        assert (r.features["spend_24h"], r.features["spend_life"], r.features["max_7d"]) == (7.0, 12.0, 7.0)
        # the first bucket was deleted on that write: reading in the past no longer sees it
        assert store.get_features(customer_id="c1", features=["spend_24h"], as_of_ms=T0 + HOUR) == {
            "spend_24h": 0.0
        }
        # the 7-day window keeps it
        assert store.get_features(customer_id="c1", features=["min_7d"]) == {"min_7d": 5.0}

    def test_customer_events_filter_and_sources_stay_apart(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)
        records = [
            EventRecord(ticket("e1", T0), "events", 0, 0),
            EventRecord(ticket("e2", T0 + MIN, kind="page_view"), "events", 0, 1),
            EventRecord(ticket("e3", T0 + 2 * MIN), "events", 0, 2),
        ]
        out = store.apply_batch("customer", records)
        assert [r.features["tickets_30d"] for r in out] == [1.0, 1.0, 2.0]
        assert out[-1].features["n_1h"] == 0.0 and out[-1].features["since_last"] == -1.0

    def test_product_entity_fans_out_over_order_lines(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)
        items = [
            OrderItem(product_id="p1", category="books", quantity=2, unit_price=3.0),
            OrderItem(product_id="p2", category="toys", quantity=5, unit_price=1.0),
            OrderItem(product_id="p1", category="books", quantity=1, unit_price=3.0),
        ]
        out = store.apply_batch(
            "product",
            [EventRecord(order("a", T0, 11.0, items=items), "orders", 0, 0), EventRecord(ticket("e", T0))],
        )
        assert [(r.index, r.entity_id, r.features["units_24h"]) for r in out] == [
            (0, "p1", 3.0),
            (0, "p2", 5.0),
        ]
        assert store.get_features(product_id="p2") == {"units_24h": 5.0}

    def test_missing_entity_gives_defaults(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)
        got = store.get_features(customer_id="nobody")
        assert got["n_1h"] == 0.0 and got["spend_life"] == 0.0 and got["pm_7d"] == 0.0
        assert got["aov_30d"] is None and got["last_24h"] is None and got["since_last"] == -1.0
        assert store.freshness("customer", "nobody") is None

    def test_batch_read_and_freshness(self, make_store: MakeStore, clock: Clock) -> None:
        store = make_store(AGGS)
        store.apply_batch(
            "customer", [EventRecord(order("a", T0, 5.0, "c1")), EventRecord(order("b", T0, 6.0, "c2"))]
        )
        clock.now += 30
        rows = store.get_features_batch("customer", ["c2", "zz", "c1"], features=["spend_life"])
        assert rows == [{"spend_life": 6.0}, {"spend_life": 0.0}, {"spend_life": 5.0}]
        assert store.freshness("customer", "c1") == pytest.approx(30.0, abs=0.01)

    def test_derived_features(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)

        @store.feature
        def lifetime_value(f):  # type: ignore[no-untyped-def]
            return f["spend_life"] * 2

        @store.feature(depends_on=["since_last"], description="days")
        def days_since(f):  # type: ignore[no-untyped-def]
            return f["since_last"] / 86400

        @store.feature
        def aov_doubled(f):  # type: ignore[no-untyped-def]
            return f["aov_30d"] * 2

        out = store.apply_batch(
            "customer", [EventRecord(order("a", T0, 5.0)), EventRecord(order("b", T0 + DAY, 1.0))]
        )
        assert out[1].features["lifetime_value"] == 12.0 and out[1].features["days_since"] == 1.0
        assert store.get_features(customer_id="c1", features=["aov_doubled"]) == {"aov_doubled": 6.0}
        assert store.get_features(customer_id="zz", features=["aov_doubled", "lifetime_value"]) == {
            "aov_doubled": None,
            "lifetime_value": 0.0,
        }
        info = {i.name: i for i in store.list_features()}
        assert info["days_since"].kind == "derived" and info["days_since"].entity == "customer"
        with pytest.raises(ConfigError, match="spend_lif"):

            @store.feature
            def broken(f):  # type: ignore[no-untyped-def]
                return f["spend_lif"]

    def test_unknown_feature_names_close_matches(self, make_store: MakeStore) -> None:
        store = make_store(AGGS)
        with pytest.raises(ConfigError, match=r"unknown feature 'spend_24'; did you mean 'spend_24h'"):
            store.get_features(customer_id="c1", features=["spend_24"])
        with pytest.raises(ConfigError, match="belongs to entity 'product'"):
            store.get_features(customer_id="c1", features=["units_24h"])
        with pytest.raises(ConfigError, match="no feature is defined for entity 'custmer'.*'customer'"):
            store.get_features(custmer_id="c1")


class FreshnessSuite:
    """max_staleness over many ids, on every backend (subclasses provide `make_store` and `clock`)."""

    def test_max_staleness_is_the_oldest_write_among_known_ids(
        self, make_store: MakeStore, clock: Clock
    ) -> None:
        store = make_store(AGGS)
        store.apply_batch("customer", [EventRecord(order("a", T0, 5.0, "c1"))])
        clock.now += 40
        store.apply_batch("customer", [EventRecord(order("b", T0, 6.0, "c2"))])
        clock.now += 5
        assert store.max_staleness("customer", ["c2", "zz", "c1"]) == pytest.approx(45.0, abs=0.01)
        assert store.max_staleness("customer", ["c2"]) == pytest.approx(5.0, abs=0.01)
        assert store.max_staleness("customer", ["zz"]) is None
        assert store.seconds_since_last_write("customer") == pytest.approx(5.0, abs=0.01)
        assert store.seconds_since_last_write("product") is None
        assert store.entities == ("customer", "product")
