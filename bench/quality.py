"""Model quality on the seeded simulator: every family against an honest baseline.

Run alone with ``.venv/bin/python -m bench.quality``; it updates section ``quality`` of
``bench/results.json`` with one object per pipeline:
``{"metric", "model", "baseline", "baseline_name", "beats_baseline", ...}``.

- ``demand_forecasting``: per-product River SNARIMAX vs seasonal naive, MAE over 7-day forecasts.
- ``recommendations``: River BiasedMF vs popularity, hit rate at 10, recommend-then-learn.
- ``price_optimization``: River LinUCB over 7 price points vs the best fixed price per product in hindsight
  (and random prices), cumulative revenue on the same visitors (common random numbers).
- ``search_ranking``: River logistic regression of clicks (``config/pipelines/search_ranking.yaml`` through
  ``learners.factory.build_model``) vs popularity, NDCG@10, rank-then-learn.
- ``fraud_detection``: ``config/pipelines/fraud_detection.yaml`` through ``learners.factory.build_model``,
  features from ``features.FeatureStore`` (in-memory backend) and ``features.raw_features``, scored at
  order time and learned when the label arrives (delayed, progressive AUC) vs the rule
  "account younger than a day AND billing country != shipping country".
- ``churn_prediction``: ``config/pipelines/churn_prediction.yaml`` through ``build_model`` vs the recency
  rule (days since the previous order). One example per order; the label ``churned_90d`` is computed here
  from the simulated stream with the system's rule ``no_order_within_horizon`` (1 when the customer places
  no further order within 90 days of the example's event time), by looking ahead in the stream; the
  example is learned when its label is known (at the next order, or 90 days later). The stream's churn is
  the simulator's BG/NBD model (``streams.simulation.BGNBD``, the paper's CDNOW parameters): Gamma purchase
  rates, a Beta drop-out chance after each order, raised by support tickets and refunds. Its
  ``churned_at`` ground truth (dropped out after this order) is not the label: a slow customer who is
  still alive can also go 90 days without an order.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hanzo.ml.features import EventRecord, FeatureStore, InMemoryOnlineStore, load_definitions, raw_features
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.families import (
    DemandForecaster,
    PopularityRanker,
    PopularityRecommender,
    PriceOptimizer,
    ProductInfo,
    Recommender,
    SearchRanker,
    evaluate_demand,
    evaluate_pricing,
    evaluate_ranking,
    evaluate_reco,
)
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.schemas.events import CustomerEvent, Label, Order
from hanzo.ml.streams.simulation import BGNBD, Simulator, SimulatorConfig
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig

DAY_MS = 86_400_000
SEED = 7


@dataclass(frozen=True)
class Sizes:
    """How much of each stream a run uses."""

    days: int = 180
    demand_products: int = 40
    purchases: int = 6000
    sessions: int = 4000
    visits: int = 20_000
    fraud_orders: int = 40_000
    churn_orders: int = 16_000


#: The sizes of ``tests/unit/test_quality_small.py``.
SMALL = Sizes(days=90, demand_products=8, purchases=2000, sessions=1000, visits=20_000,
              fraud_orders=20_000, churn_orders=10_000)


class _AUC:
    """Exact ROC AUC (the Mann-Whitney statistic, ties counted half) of scores on any scale."""

    def __init__(self) -> None:
        self.pairs: list[tuple[float, bool]] = []

    def update(self, y: bool, score: float) -> None:
        self.pairs.append((float(score), bool(y)))

    def get(self) -> float:
        ranked = sorted(self.pairs)
        pos = sum(y for _, y in ranked)
        neg = len(ranked) - pos
        if not pos or not neg:
            return float("nan")
        rank_sum, i = 0.0, 0
        while i < len(ranked):
            j = i
            while j < len(ranked) and ranked[j][0] == ranked[i][0]:
                j += 1
            rank_sum += sum(y for _, y in ranked[i:j]) * (i + j + 1) / 2
            i = j
        return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _row(metric: str, model: float, baseline: float, name: str, lower_is_better: bool, **extra: Any) -> dict:
    beats = model < baseline if lower_is_better else model > baseline
    return {
        "metric": metric,
        "model": round(float(model), 4),
        "baseline": round(float(baseline), 4),
        "baseline_name": name,
        "beats_baseline": bool(beats),
        **extra,
    }


def demand(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    config = ShopSimulatorConfig(seed=seed, days=sizes.days, demand_products=sizes.demand_products)
    shop = ShopSimulator(config)
    rows = ((day, pid, float(units)) for day, _, pid, units in shop.daily_units())
    score = evaluate_demand(rows, DemandForecaster(horizon=7))
    return _row("mae", score.model_mae, score.baseline_mae, "seasonal naive (same weekday last week)", True,
                model_name="river.time_series.SNARIMAX(p=0,d=0,q=0,m=7,sp=4) per product",
                forecasts=score.forecasts, products=sizes.demand_products, days=sizes.days)


def recommendations(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    shop = ShopSimulator(ShopSimulatorConfig(seed=seed, purchases=sizes.purchases))
    stream = ((i.customer_id, i.product_id, i.kind) for i in shop.interactions())
    score = evaluate_reco(stream, Recommender(k=10), PopularityRecommender(k=10))
    return _row("hit_rate_at_10", score.model_hit_rate, score.baseline_hit_rate, "popularity (top 10 sold)",
                False, model_name="river.reco.BiasedMF(n_factors=8) + 4 negative samples",
                purchases_scored=score.purchases)


def pricing(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    shop = ShopSimulator(ShopSimulatorConfig(seed=seed, visits=sizes.visits))
    pids = shop.experiment_products
    optimizer = PriceOptimizer(
        shop.config.price_points,
        {p: shop.products[p].list_price for p in pids},
        {p: shop.products[p].category for p in pids},
    )
    score = evaluate_pricing(shop.price_visits(), optimizer, shop.bought, seed=seed)
    return _row("cumulative_revenue", score.model_revenue, score.best_fixed_revenue,
                "best fixed price per product in hindsight", False,
                random_revenue=round(score.random_revenue, 2),
                beats_random=score.model_revenue > score.random_revenue,
                model_name="LinUCB over 7 price points (a River BayesianLinearRegression an arm)",
                visits=score.visits)


def ranking(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    shop = ShopSimulator(ShopSimulatorConfig(seed=seed, sessions=sizes.sessions))
    catalog = {p: ProductInfo(sp.category, sp.list_price, sp.tags) for p, sp in shop.products.items()}
    model = build_model(PipelineSpec.shipped("search_ranking"))
    score = evaluate_ranking(shop.sessions(), SearchRanker(catalog, model), PopularityRanker())
    return _row("ndcg_at_10", score.model_ndcg, score.baseline_ndcg, "popularity (purchases, then clicks)",
                False, model_name="search_ranking.yaml: StandardScaler | LogisticRegression",
                sessions_scored=score.sessions)


class _Clock:
    """The feature store's wall clock follows simulated event time."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


def _store(names: tuple[str, ...]) -> tuple[FeatureStore, _Clock]:
    """A feature store with the shipped definitions the pipeline reads (the others would only cost time)."""
    clock = _Clock()
    definitions = [a for a in load_definitions() if a.name in names]
    return FeatureStore(definitions, backend=InMemoryOnlineStore(), clock=clock), clock


def _clean(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if v is not None}


def _proba(model: Any, x: dict[str, Any]) -> float:
    p = model.predict_proba_one(x)
    return float(p.get(True, p.get(1, 0.0)))


def fraud(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    spec = PipelineSpec.shipped("fraud_detection")
    model = build_model(spec)
    names = spec.data.features
    store, clock = _store(names)
    sim = Simulator(SimulatorConfig(seed=seed, orders=sizes.fraud_orders, orders_per_day=1000))
    pending: dict[str, tuple[dict[str, Any], float, float]] = {}
    auc_model, auc_rule = _AUC(), _AUC()
    learned = 0
    for event in sim.events():
        clock.ms = max(clock.ms, event.event_time)
        if isinstance(event, Order):
            result = store.apply_batch("customer", [EventRecord(event)])[0]
            raw = raw_features(event)
            x = _clean({n: {**result.features, **raw}.get(n) for n in names})
            rule = float(float(raw["account_age_days"]) < 1.0 and raw["country_mismatch"] == 1.0)
            pending[event.order_id] = (x, _proba(model, x), rule)
        elif isinstance(event, Label) and event.target == "fraud" and event.subject_id in pending:
            x, p, rule = pending.pop(event.subject_id)
            y = event.value >= 0.5
            auc_model.update(y, p)
            auc_rule.update(y, rule)
            model.learn_one(x, y)
            learned += 1
    return _row("auc", auc_model.get(), auc_rule.get(), "rule: account < 1 day old AND country mismatch",
                False, model_name="fraud_detection.yaml: StandardScaler/OneHot | LogisticRegression",
                labels=learned, protocol="scored at order time, learned when the label arrives")


def churn(seed: int = SEED, sizes: Sizes = Sizes()) -> dict:
    shipped = PipelineSpec.shipped("churn_prediction")
    # The shipped 100 boosted trees learn ~100x slower than this benchmark's budget; same type, fewer trees.
    spec = PipelineSpec.from_dict(
        {**shipped.model_dump(), "model": {"type": "gradient_boosting", "hyperparameters": CHURN_MODEL}}
    )
    model = build_model(spec)
    horizon = spec.labels.horizon_days * DAY_MS
    store, clock = _store(("lifetime_spend", "seconds_since_last_order", "support_tickets_30d"))

    @store.feature
    def customer_lifetime_value(f: Any) -> float:
        return float(f["lifetime_spend"])

    @store.feature
    def days_since_last_order(f: Any) -> float:
        return float(f["seconds_since_last_order"]) / 86_400

    sim = Simulator(SimulatorConfig(seed=seed, orders=sizes.churn_orders, orders_per_day=40,
                                    churn=BGNBD(), fraud_rate=0.0, browse_events_per_order=0.0))
    events = list(sim.events())
    orders = [e for e in events if isinstance(e, Order)]
    last_order_ms = orders[-1].event_time
    next_order: dict[str, int | None] = {}
    following: dict[str, int | None] = {}
    for o in reversed(orders):
        following[o.order_id] = next_order.get(o.customer_id)
        next_order[o.customer_id] = o.event_time
    names = spec.data.features
    due: list[tuple[int, int, dict[str, Any], bool, float, float]] = []
    auc_model, auc_rule = _AUC(), _AUC()
    n = positives = 0

    def release(until: int) -> None:
        nonlocal n, positives
        while due and due[0][0] <= until:
            _, _, x, y, p, rule = heapq.heappop(due)
            auc_model.update(y, p)
            auc_rule.update(y, rule)
            model.learn_one(x, y)
            n += 1
            positives += y

    for event in events:
        clock.ms = max(clock.ms, event.event_time)
        release(event.event_time)
        if isinstance(event, Order):
            features = store.apply_batch("customer", [EventRecord(event)])[0].features
            t = event.event_time
            if t + horizon > last_order_ms:
                continue  # the stream ends before this example's label is known
            x = _clean({k: features.get(k) for k in names})
            nxt = following[event.order_id]
            y = nxt is None or nxt > t + horizon
            known_at = t + horizon if y else int(nxt)  # type: ignore[arg-type]
            since = features["seconds_since_last_order"]
            if since is None or since < 0:  # a first order: the time since the account was opened
                since = (t - (event.account_created_time or t)) / 1000
            rule = float(since) / 86_400
            heapq.heappush(due, (known_at, len(due) + n, x, y, _proba(model, x), rule))
        elif isinstance(event, CustomerEvent):
            store.apply_batch("customer", [EventRecord(event)])
    release(math.inf)  # type: ignore[arg-type]
    return _row("auc", auc_model.get(), auc_rule.get(), "rule: days since the previous order", False,
                model_name=f"churn_prediction.yaml features, gradient_boosting {CHURN_MODEL}", examples=n,
                positive_share=round(positives / max(n, 1), 3),
                label="churned_90d computed in bench.quality by looking ahead in the simulated stream")


CHURN_MODEL = {"n_estimators": 5, "max_depth": 6}

FAMILIES: dict[str, Callable[..., dict]] = {
    "demand_forecasting": demand,
    "recommendations": recommendations,
    "price_optimization": pricing,
    "search_ranking": ranking,
    "fraud_detection": fraud,
    "churn_prediction": churn,
}


def measure(seed: int = SEED, sizes: Sizes = Sizes()) -> dict[str, Any]:
    section: dict[str, Any] = {}
    started = time.perf_counter()
    for name, fn in FAMILIES.items():
        t = time.perf_counter()
        section[name] = {**fn(seed, sizes), "seconds": round(time.perf_counter() - t, 1)}
    section["seed"] = seed
    section["seconds"] = round(time.perf_counter() - started, 1)
    return section


def main() -> None:
    """Measure, print a table and write the ``quality`` section."""
    from rich.console import Console
    from rich.table import Table

    from bench.results import write_section

    section = measure()
    table = Table(title=f"model quality vs baselines (seed {section['seed']})")
    for col in ("pipeline", "metric", "model", "baseline", "baseline name", "beats", "s"):
        table.add_column(col, justify="right" if col in ("model", "baseline", "s") else "left")
    for name in FAMILIES:
        row = section[name]
        table.add_row(name, row["metric"], f"{row['model']:g}", f"{row['baseline']:g}", row["baseline_name"],
                      "[green]yes[/green]" if row["beats_baseline"] else "[red]no[/red]",
                      f"{row['seconds']:g}")
    Console().print(table)
    write_section("quality", section)


if __name__ == "__main__":
    main()
