"""The model families write what a shop reads to a real Redis, under documented keys with a TTL."""

import json

import pytest
import redis

from hanzo.ml.learners.families import (
    DemandForecaster,
    PriceOptimizer,
    ProductInfo,
    Recommender,
    SearchRanker,
)

pytestmark = pytest.mark.integration


def test_every_family_publishes_its_keys(redis_client: redis.Redis, key_prefix: str) -> None:
    demand = DemandForecaster(horizon=3)
    for day in range(30):
        demand.learn("p1", 5.0 + day % 7)
    assert demand.publish(redis_client, key_prefix, ttl_s=600) == 1
    forecast = json.loads(redis_client.get(f"{key_prefix}forecast:p1"))
    assert len(forecast) == 3 and all(v >= 0 for v in forecast)
    assert 0 < redis_client.ttl(f"{key_prefix}forecast:p1") <= 600

    reco = Recommender(k=2, seed=1)
    for p in ("a", "b", "c"):
        reco.learn("c1", p, "purchase")
    assert reco.publish(redis_client, key_prefix) == 1
    assert sorted(json.loads(redis_client.get(f"{key_prefix}reco:c1"))) == sorted(reco.recommend("c1"))

    pricing = PriceOptimizer((0.9, 1.0, 1.1), {"p1": 20.0}, {"p1": "books"})
    m = pricing.choose("p1", "frequent")
    pricing.learn("p1", "frequent", m, revenue=20.0 * m)
    assert pricing.publish(redis_client, key_prefix) == 1
    price = json.loads(redis_client.get(f"{key_prefix}price:p1"))
    assert price["multiplier"] in (0.9, 1.0, 1.1)
    assert price["price"] == round(20.0 * price["multiplier"], 2)
    assert set(price["by_segment"]) == {"frequent"}

    catalog = {
        "a": ProductInfo("books", 5.0, frozenset({"cheap"})),
        "b": ProductInfo("books", 9.0, frozenset()),
    }
    ranker = SearchRanker(catalog)
    ranker.learn("books cheap", ["a", "b"], clicks={"a"})
    assert ranker.publish(redis_client, key_prefix) == 1
    assert sorted(json.loads(redis_client.get(f"{key_prefix}rank:books cheap"))) == ["a", "b"]


def test_train_writes_each_familys_outputs_to_redis(redis_client: redis.Redis, key_prefix: str) -> None:
    from hanzo.ml.learners.spec import PipelineSpec
    from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
    from hanzo.ml.streams.simulation.shop_events import shop_events
    from hanzo.ml.streams.train import train

    shop = ShopSimulator(
        ShopSimulatorConfig(
            seed=2,
            products=40,
            customers=60,
            days=10,
            demand_products=2,
            sessions=100,
            purchases=100,
            visits=300,
        )
    )
    history = shop_events(shop)
    for name, kind in [
        ("demand_forecasting", "forecast"),
        ("recommendations", "reco"),
        ("price_optimization", "price"),
        ("search_ranking", "rank"),
    ]:
        result = train(PipelineSpec.shipped(name), history, redis_client=redis_client, key_prefix=key_prefix)
        keys = list(redis_client.scan_iter(match=f"{key_prefix}{kind}:*", count=1000))
        assert result.published == len(keys) > 0, name
        assert json.loads(redis_client.get(keys[0]))  # a non-empty JSON value
