"""Feature definitions: the shipped file, load-time errors that name the culprit, fields, raw features."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanzo.ml import features
from hanzo.ml.config.errors import ConfigError
from hanzo.ml.features import Aggregate, load_definitions, raw_features
from hanzo.ml.features.definitions import entity_keys, input_function
from hanzo.ml.schemas.events import CustomerEvent, Order, OrderItem

T0 = 1_700_000_000_000


def agg(**kw: object) -> Aggregate:
    base: dict[str, object] = {"name": "f", "entity": "customer", "source": "orders", "aggregation": "count"}
    return Aggregate.model_validate({**base, **kw})


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert sorted(features.__all__) == sorted(
        [
            "Aggregate",
            "AsyncFeatureReader",
            "ApplyResult",
            "EventRecord",
            "FeatureInfo",
            "FeatureStore",
            "InMemoryOnlineStore",
            "OnlineStore",
            "RedisOnlineStore",
            "load_definitions",
            "raw_features",
        ]
    )


def test_shipped_definitions_hold_the_required_features() -> None:
    defs = {a.name: a for a in load_definitions()}
    want = {
        "orders_1h": ("customer", "count", "1h", None),
        "orders_24h": ("customer", "count", "24h", None),
        "spend_24h": ("customer", "sum", "24h", "total"),
        "mean_order_value_30d": ("customer", "mean", "30d", "total"),
        "lifetime_spend": ("customer", "sum", "lifetime", "total"),
        "orders_lifetime": ("customer", "count", "lifetime", None),
        "seconds_since_last_order": ("customer", "time_since_last", "lifetime", None),
        "support_tickets_30d": ("customer", "count", "30d", None),
        "units_sold_24h": ("product", "sum", "24h", "items.quantity"),
    }
    for name, (entity, aggregation, window, field) in want.items():
        a = defs[name]
        assert (a.entity, a.aggregation, a.window, a.field) == (entity, aggregation, window, field), name
    assert defs["support_tickets_30d"].where_clause() == ("type", "support_ticket")


@pytest.mark.parametrize(
    ("window", "bucket_min", "n"),
    [("1h", 1, 60), ("45m", 1, 45), ("24h", 15, 96), ("3h", 15, 12), ("7d", 60, 168), ("30d", 1440, 30)],
)
def test_bucket_rule(window: str, bucket_min: int, n: int) -> None:
    a = agg(window=window)
    assert (a.bucket_ms // 60_000, a.n_buckets) == (bucket_min, n)


def test_bucket_override_and_lifetime() -> None:
    assert agg(window="100m", bucket="5m").n_buckets == 20
    life = agg()
    assert (life.window_ms, life.bucket_ms, life.precision) == (None, 0, None)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"aggregation": "median"}, "unknown aggregation 'median'"),
        ({"window": "2w"}, "window '2w'"),
        ({"window": "100m"}, "not a whole number of 15m buckets"),
        ({"entity": "warehouse"}, "unknown entity 'warehouse'"),
        ({"aggregation": "sum", "field": "totl"}, "unknown field 'totl' of orders; did you mean 'total'"),
        ({"aggregation": "sum", "field": "payment_method"}, "'payment_method' is text; use distinct_count"),
        ({"aggregation": "sum"}, "sum needs a field"),
        ({"field": "total"}, "count takes no field"),
        ({"source": "clicks"}, "unknown source 'clicks'"),
        ({"source": "customer_events", "where": 'type == "support_tiket"'}, "did you mean 'support_ticket'"),
        ({"where": "total > 3"}, "is not `<field> =="),
        ({"entity": "category", "source": "customer_events"}, "unknown entity 'category'"),
        ({"name": "Bad-Name"}, "feature name is lower case"),
        ({"bucket": "5m"}, "lifetime aggregate has no buckets"),
    ],
)
def test_bad_definitions_raise_config_error_naming_it(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("`", ".")):
        agg(**kw)


def test_load_definitions_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "f.yaml"
    bad.write_text(
        "features:\n  - {name: a, entity: customer, source: orders, aggregation: count, window: 1x}\n"
    )
    with pytest.raises(ConfigError, match=r"f\.yaml: feature 'a': window '1x'"):
        load_definitions(bad)
    bad.write_text(
        "features:\n  - {name: a, entity: customer, source: orders, aggregation: count, colour: red}\n"
    )
    with pytest.raises(ConfigError, match=r"feature 'a': colour: Extra inputs"):
        load_definitions(bad)
    bad.write_text(
        "features:\n"
        "  - {name: a, entity: customer, source: orders, aggregation: count}\n"
        "  - {name: a, entity: product, source: orders, aggregation: count}\n"
    )
    with pytest.raises(ConfigError, match="'a' is defined twice"):
        load_definitions(bad)
    with pytest.raises(ConfigError, match="cannot read feature definitions"):
        load_definitions(tmp_path / "missing.yaml")


def _order(**kw: object) -> Order:
    data: dict[str, object] = {
        "order_id": "o1",
        "customer_id": "c1",
        "event_time": T0,
        "items": [
            OrderItem(product_id="p1", category="books", quantity=2, unit_price=10.0),
            OrderItem(product_id="p2", category="toys", quantity=1, unit_price=4.0),
            OrderItem(product_id="p1", category="books", quantity=3, unit_price=9.0),
        ],
        "total": 51.0,
        "currency": "EUR",
        "payment_method": "paypal",
        "billing_country": "DE",
        "shipping_country": "DE",
        "channel": "app",
    }
    return Order.model_validate({**data, **kw})


def test_entity_keys_and_inputs() -> None:
    o = _order()
    assert entity_keys("product", o) == ["p1", "p2"]
    assert entity_keys("category", o) == ["books", "toys"]
    assert entity_keys("customer", o) == ["c1"]
    assert entity_keys("billing_country", o) == ["DE"]
    ev = CustomerEvent(event_id="e", customer_id="c1", event_time=T0, type="page_view")
    assert entity_keys("product", ev) == []
    revenue = input_function(agg(entity="product", aggregation="sum", field="items.revenue", window="24h"))
    assert revenue(o, "p1") == 47.0 and revenue(o, "p2") == 4.0
    mean_price = input_function(agg(aggregation="mean", field="items.unit_price", window="7d"))
    assert mean_price(o, "c1") == (23.0, 3.0)
    products = input_function(agg(aggregation="distinct_count", field="items.product_id", window="7d"))
    assert products(o, "c1") == frozenset({"p1", "p2"})
    app_orders = input_function(agg(where='channel == "app"'))
    assert app_orders(o, "c1") == 1.0 and app_orders(_order(channel="web"), "c1") is None
    assert app_orders(ev, "c1") is None  # another source
    age = input_function(agg(aggregation="max", field="account_age_days", window="7d"))
    assert age(o, "c1") is None


def test_raw_features() -> None:
    o = _order(account_created_time=T0 - 2 * 86_400_000, shipping_country="FR")
    assert raw_features(o) == {
        "order_total": 51.0,
        "account_age_days": 2.0,
        "country_mismatch": 1.0,
        "payment_method": "paypal",
        "channel": "app",
        "n_items": 6.0,
        "n_lines": 3.0,
    }
    assert raw_features(_order())["account_age_days"] == -1.0
    assert raw_features(_order())["country_mismatch"] == 0.0


def test_shared_inputs_equal_one_function_per_aggregate() -> None:
    from hanzo.ml.features.definitions import input_functions, load_definitions
    from hanzo.ml.schemas.events import CustomerEvent, Order
    from hanzo.ml.streams.simulation.config import SimulatorConfig
    from hanzo.ml.streams.simulation.generator import Simulator

    defs = load_definitions()
    sim = Simulator(SimulatorConfig(seed=5, orders=300, customers=50))
    events = [e for e in sim.events() if isinstance(e, Order | CustomerEvent)]
    assert {type(e) for e in events} == {Order, CustomerEvent}
    for entity in ("customer", "product", "category"):
        aggs = [a for a in defs if a.entity == entity]
        together, alone = input_functions(aggs), [input_function(a) for a in aggs]
        for event in events:
            for key in entity_keys(entity, event):
                assert together(event, key) == tuple(f(event, key) for f in alone)


def test_shared_inputs_with_filters_missing_values_and_separators() -> None:
    """The per-event-type plan of ``input_functions`` gives what each aggregate's own function gives."""
    from hanzo.ml.features.definitions import entity_key_function, input_functions

    aggs = [
        agg(name="app_orders", where='channel == "app"'),
        agg(name="app_spend", where='channel == "app"', aggregation="sum", field="total", window="24h"),
        agg(name="web_lines", where="channel == web", aggregation="max", field="n_lines", window="24h"),
        agg(name="age", aggregation="max", field="account_age_days", window="7d"),
        agg(name="mean_price", aggregation="mean", field="items.unit_price", window="7d"),
        agg(name="last_qty", aggregation="last", field="items.quantity", window="lifetime"),
        agg(name="min_rev", aggregation="min", field="items.revenue", window="1h"),
        agg(name="products", aggregation="distinct_count", field="items.product_id", window="7d"),
        agg(name="methods", aggregation="distinct_count", field="payment_method", window="7d"),
        agg(name="p_units", entity="product", aggregation="sum", field="items.quantity", window="1h"),
        agg(
            name="p_cats", entity="product", aggregation="distinct_count", field="items.category", window="1h"
        ),
        agg(name="tickets", source="customer_events", where='type == "support_ticket"'),
        agg(name="views", source="customer_events", where='type == "page_view"', window="1h"),
        agg(name="values", source="customer_events", aggregation="sum", field="value", window="1h"),
        agg(
            name="queries", source="customer_events", aggregation="distinct_count", field="query", window="1h"
        ),
    ]
    events = [
        _order(),
        _order(channel="web", payment_method="card", account_created_time=T0 - 86_400_000),
        _order(items=[OrderItem(product_id="p9", category="a\x1eb", quantity=4, unit_price=2.5)]),
        CustomerEvent(event_id="e1", customer_id="c1", event_time=T0, type="support_ticket"),
        CustomerEvent(event_id="e2", customer_id="c1", event_time=T0, type="page_view", value=3.0),
        CustomerEvent(event_id="e3", customer_id="c1", event_time=T0, type="search", query="red\x1fshoes"),
    ]
    for entity in ("customer", "product"):
        mine = [a for a in aggs if a.entity == entity]
        together, alone, keys = (
            input_functions(mine),
            [input_function(a) for a in mine],
            entity_key_function(entity),
        )
        for event in events:
            assert keys(event) == entity_keys(entity, event)
            for key in keys(event):
                assert together(event, key) == tuple(f(event, key) for f in alone)
    assert input_functions(aggs[:3])(events[1], "c1") == (None, None, 3.0)
