"""The model families on the order/event stream: windows, joins, train, registry round trip."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.families import build_family
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import CustomerEvent, Order, OrderItem
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig
from hanzo.ml.streams.simulation.shop_events import shop_events
from hanzo.ml.streams.train import train

T0 = 1_767_225_600_000  # 2026-01-01, a midnight
DAY = 86_400_000
FAMILIES = ("demand_forecasting", "recommendations", "price_optimization", "search_ranking")


def order(
    oid: str, t: int, pid: str = "p1", qty: int = 1, price: float = 10.0, customer: str = "c1"
) -> Order:
    return Order(
        order_id=oid,
        customer_id=customer,
        event_time=t,
        items=[OrderItem(product_id=pid, category="books", quantity=qty, unit_price=price)],
        total=qty * price,
        currency="EUR",
        payment_method="card",
        billing_country="DE",
        shipping_country="DE",
        channel="web",
    )


def event(eid: str, t: int, kind: str, **fields: Any) -> CustomerEvent:
    return CustomerEvent(
        event_id=eid, customer_id=fields.pop("customer", "c1"), event_time=t, type=kind, **fields
    )


@pytest.fixture(scope="module")
def history() -> list:
    shop = ShopSimulator(
        ShopSimulatorConfig(
            seed=3,
            products=60,
            customers=120,
            days=45,
            demand_products=4,
            sessions=600,
            purchases=600,
            visits=3000,
        )
    )
    return shop_events(shop)


@pytest.mark.parametrize("name", FAMILIES)
def test_train_each_family_registers_what_the_worker_continues_from(name: str, history: list, tmp_path: Path):
    registry = Registry(tmp_path / "registry")
    result = train(PipelineSpec.shipped(name), history, registry=registry, source="shop.jsonl")
    learner = result.learner
    assert learner.examples_learned > 0 and result.evaluated_on == "progressive"
    assert result.baseline  # the baseline was measured on the same examples
    version = registry.list_versions(name)[-1]
    assert result.version == version.version
    meta = version.metadata
    assert meta["family"] == learner.family and meta["trained_by"] == "hanzo-ml train"
    assert meta["examples_learned"] == learner.examples_learned
    assert set(meta["metrics"]["cumulative"]) == set(PipelineSpec.shipped(name).evaluation.metrics)
    restored = registry.load(name, "latest")
    assert type(restored) is type(learner) and restored.examples_learned == learner.examples_learned


def test_families_learn_the_shop_signal(history: list) -> None:
    ranking = train(PipelineSpec.shipped("search_ranking"), history)
    assert ranking.report is not None
    assert ranking.report["ndcg_at_10"] > ranking.report["baseline_ndcg_at_10"]
    demand = train(PipelineSpec.shipped("demand_forecasting"), history)
    assert demand.progressive["cumulative"]["mae"] < demand.baseline["mae"]  # type: ignore[index]
    pricing = train(PipelineSpec.shipped("price_optimization"), history)
    assert pricing.progressive["cumulative"]["mean_reward"] > pricing.baseline["mean_reward"]  # type: ignore[index]


def test_a_missed_family_threshold_is_reported(history: list) -> None:
    data = PipelineSpec.shipped("recommendations").model_dump()
    data["evaluation"]["threshold"] = {"hit_rate_at_10": 0.99}
    result = train(PipelineSpec.from_dict(data), history)
    assert not result.ok and "hit_rate_at_10" in result.missed


def test_demand_learns_a_day_once_the_watermark_passed_it_and_counts_late_orders() -> None:
    learner = build_family(PipelineSpec.shipped("demand_forecasting"), lateness_ms=0)
    learner.learn_batch([order("o1", T0 + 1000, qty=3), order("o2", T0 + 2000, pid="p2")])
    assert learner.examples_learned == 0  # day 0 still open
    learner.learn_batch([order("o3", T0 + DAY + 5, qty=2)])
    assert learner.examples_learned == 2  # day 0 of p1 and p2
    learner.learn_batch([order("late", T0 + 10, qty=9)])
    assert learner.late_events == 1
    learner.learn_batch([order("o4", T0 + 3 * DAY + 5)])
    assert learner.examples_learned == 2 + 2 * 2  # days 1 and 2, p2 with 0 units
    assert len(learner.forecaster.forecast("p2") or []) == 7


def test_pricing_rewards_a_visit_with_the_order_that_follows_it() -> None:
    learner = build_family(PipelineSpec.shipped("price_optimization"), lateness_ms=0)
    props = {"price_multiplier": 1.15, "list_price": 20.0, "segment": "frequent", "category": "books"}
    learner.learn_batch(
        [
            event("v1", T0, "page_view", product_id="p1", properties=props),
            event("v2", T0, "page_view", product_id="p1", properties=props, customer="c2"),
            order("o1", T0 + 60_000, pid="p1", price=23.0),
        ]
    )
    assert learner.visits == 1  # c1's visit earned 23.0; c2's is still open
    learner.learn_batch([event("x", T0 + 3_600_000, "search", query="q")])
    assert learner.visits == 2  # c2's window passed: reward 0
    assert learner.baseline_metrics is not None
    cell = learner._by_arm["p1"][learner.optimizer.price_points.index(1.15)]
    assert cell == [pytest.approx(23.0 / 20.0), 2]


def test_ranking_session_collects_clicks_until_its_window_closes() -> None:
    from hanzo.ml.learners.families import search_properties

    learner = build_family(PipelineSpec.shipped("search_ranking"), lateness_ms=0, warmup=0)
    props = search_properties(["a", "b"], [5.0, 30.0], [frozenset({"cheap"}), frozenset()], "books")
    learner.learn_batch(
        [
            event("s1", T0, "search", query="books cheap", properties=props),
            event("k1", T0 + 5000, "click", product_id="a", properties={"session_id": "s1"}),
        ]
    )
    assert learner.sessions == 0
    learner.learn_batch([event("x", T0 + 3_600_000, "page_view")])
    assert learner.sessions == 1 and learner.examples_learned == 2
    learner.learn_batch(
        [event("k2", T0 + 3_600_001, "click", product_id="a", properties={"session_id": "s1"})]
    )
    assert learner.late_events == 1


def test_family_learner_pickles_with_its_state(history: list) -> None:
    learner = build_family(PipelineSpec.shipped("recommendations"))
    learner.learn_batch(history[:3000])
    copy = pickle.loads(pickle.dumps(learner))
    customer = next(iter(learner.recommender._customers))
    assert copy.recommender.recommend(customer) == learner.recommender.recommend(customer)


def test_build_family_refuses_a_per_entity_pipeline() -> None:
    with pytest.raises(ConfigError, match="not a model family"):
        build_family(PipelineSpec.shipped("fraud_detection"))
