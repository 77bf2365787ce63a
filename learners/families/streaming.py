"""The model families learning from the order and event stream, as ``hanzo-ml train`` and the worker run them.

:func:`build_family` turns a family pipeline spec (:attr:`config.pipeline.PipelineSpec.family`) into a
:class:`FamilyLearner`: :class:`DemandLearner`, :class:`RecoLearner`, :class:`PricingLearner` or
:class:`RankingLearner`. Each takes batches of orders and customer events (:meth:`FamilyLearner.learn_batch`;
the shop's event conventions are in :mod:`learners.families.events`), evaluates progressively (predict, then
learn) with the spec's metrics beside an honest baseline on the same examples, and writes its Redis outputs
(:meth:`FamilyLearner.publish`, keys in :mod:`learners.families.keys`) for what changed since the last write.

Windows (a demand day, a search session, a price visit's reward) close on a watermark of event time: the
smallest of the newest event times of every input (a topic partition, or an event kind in history), never
more than :data:`MAX_SKEW_MS` behind the newest event, minus an allowed lateness. Events for a window that
was already closed are counted in ``late_events`` and not applied. A learner pickles (registry snapshots)
and carries the input offsets it has consumed, like :class:`learners.online.OnlineLearner`.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.learners.factory import build_estimator, build_model
from hanzo.ml.learners.families.demand import SEASON, DemandForecaster, seasonal_naive
from hanzo.ml.learners.families.events import (
    SESSION_WINDOW_MS,
    VISIT_WINDOW_MS,
    PriceVisitEvent,
    price_visit,
    search_event,
)
from hanzo.ml.learners.families.pricing import PriceOptimizer
from hanzo.ml.learners.families.ranking import FEATURES, PopularityRanker, SearchRanker, ndcg_at_k
from hanzo.ml.learners.families.reco import PopularityRecommender, Recommender
from hanzo.ml.learners.metrics import MetricSet
from hanzo.ml.learners.spec import PipelineSpec

logger = logging.getLogger(__name__)

__all__ = [
    "DemandLearner",
    "FamilyLearner",
    "PricingLearner",
    "RankingLearner",
    "RecoLearner",
    "build_family",
]

DAY_MS = 86_400_000
#: The watermark never lags the newest event by more than this (an idle input does not stall windows).
MAX_SKEW_MS = DAY_MS
DEFAULT_LATENESS_MS = 3_600_000


class FamilyLearner:
    """What every family learner shares: metrics, baseline, watermark, offsets, version, dirty outputs.

    Parameters
    ----------
    spec
        The family's pipeline spec.
    lateness_ms
        How far behind the watermark an event may arrive and still count.
    """

    family = ""

    def __init__(self, spec: PipelineSpec, lateness_ms: int = DEFAULT_LATENESS_MS) -> None:
        self.spec = spec
        self.lateness_ms = lateness_ms
        self.name = spec.name
        self.spec_hash = spec.spec_hash
        self.metrics = MetricSet(spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window)
        self.baseline_metrics: MetricSet | None = None
        self.version: str | None = None
        self.offsets: dict[str, int] = {}
        self.examples_learned = 0
        self.events_seen = 0
        self.late_events = 0
        self._newest: dict[str, int] = {}

    # -- the stream --

    def learn_batch(self, events: Iterable[Any], source: str = "all") -> int:
        """Learn from ``events`` (orders and customer events) read from input ``source``; close due windows.

        Returns how many examples were learned. Other event kinds (labels) are ignored.
        """
        before = self.examples_learned
        newest = self._newest.get(source)
        for event in sorted(events, key=lambda e: e.event_time):
            kind = getattr(event, "kind", None)
            if kind == "order":
                self.on_order(event)
            elif kind == "customer_event":
                self.on_event(event)
            else:
                continue
            self.events_seen += 1
            newest = event.event_time if newest is None else max(newest, event.event_time)
        if newest is not None:
            self._newest[source] = newest
            self.advance(self.watermark_ms())
        return self.examples_learned - before

    def watermark_ms(self) -> int:
        """Event time up to which every input has delivered (see the module docstring)."""
        if not self._newest:
            return 0
        top = max(self._newest.values())
        return max(min(self._newest.values()), top - MAX_SKEW_MS)

    def on_order(self, order: Any) -> None:
        """Take one order (families that learn from orders override this)."""

    def on_event(self, event: Any) -> None:
        """Take one customer event (families that learn from events override this)."""

    def advance(self, watermark_ms: int) -> None:
        """Close the windows the watermark has passed."""

    def close(self) -> None:
        """Close every window still open (the end of a history file)."""

    # -- outputs --

    def publish(self, client: Any, prefix: str = "", ttl_s: int | None = None) -> int:
        """Write the outputs that changed since the last call to Redis; returns the keys written."""
        raise NotImplementedError

    def metric_values(self) -> dict[str, dict[str, float]]:
        """The model's metrics, cumulative and rolling."""
        return self.metrics.get()

    def baseline_values(self) -> dict[str, float]:
        """The baseline's cumulative values of the same metrics on the same examples."""
        return self.baseline_metrics.get()["cumulative"] if self.baseline_metrics is not None else {}

    def report(self) -> dict[str, Any]:
        """Counts and extra figures for the registry metadata."""
        return {
            "events": self.events_seen,
            "examples_learned": self.examples_learned,
            "late_events": self.late_events,
            "scored": self.metrics.n,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, examples_learned={self.examples_learned})"


def _ttl(spec: PipelineSpec, ttl_s: int | None) -> int:
    return ttl_s if ttl_s is not None else spec.scoring.ttl_s


class DemandLearner(FamilyLearner):
    """Daily units per product from order items; forecasts ``horizon_days`` ahead (``forecast:{product}``).

    Examples
    --------
    >>> learner = build_family(PipelineSpec.shipped("demand_forecasting"))
    >>> type(learner).__name__, learner.forecaster.horizon
    ('DemandLearner', 7)
    """

    family = "demand"

    def __init__(self, spec: PipelineSpec, lateness_ms: int = DEFAULT_LATENESS_MS, warmup_days: int = 28):
        super().__init__(spec, lateness_ms)
        self.warmup_days = warmup_days
        model = build_estimator(spec.model.type, "forecasting", spec.model.hyperparameters)
        self.forecaster = DemandForecaster(horizon=spec.model.horizon_days or 7, model=model)
        self.baseline_metrics = MetricSet(
            spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window
        )
        self._open: dict[int, Counter[str]] = {}
        self._next_day: int | None = None
        self._first_day: dict[str, int] = {}
        self._days: Counter[str] = Counter()
        self._history: dict[str, deque[float]] = {}
        self._pending: dict[str, list[tuple[int, list[float], list[float]]]] = {}
        self._dirty = False

    def on_order(self, order: Any) -> None:
        """Add the order's units to its day."""
        day = order.event_time // DAY_MS
        if self._next_day is not None and day < self._next_day:
            self.late_events += 1
            return
        if self._next_day is None:
            self._next_day = day
        units = self._open.setdefault(day, Counter())
        for item in order.items:
            units[item.product_id] += item.quantity
            self._first_day.setdefault(item.product_id, day)

    def advance(self, watermark_ms: int) -> None:
        """Learn every day that ended (plus the lateness) before the watermark."""
        while self._next_day is not None and (self._next_day + 1) * DAY_MS + self.lateness_ms <= watermark_ms:
            self._close_day(self._next_day)
            self._next_day += 1

    def _close_day(self, day: int) -> None:
        units_by_product = self._open.pop(day, Counter())
        horizon = self.forecaster.horizon
        for pid, first in self._first_day.items():
            if first > day:
                continue
            units = float(units_by_product.get(pid, 0))
            for made, fc, base in self._pending.get(pid, []):
                step = day - made - 1
                if 0 <= step < horizon:
                    self.metrics.update(units, fc[step])
                    assert self.baseline_metrics is not None
                    self.baseline_metrics.update(units, base[step])
            pending = [p for p in self._pending.get(pid, []) if day - p[0] < horizon]
            self.forecaster.learn(pid, units)
            self.examples_learned += 1
            self._days[pid] += 1
            past = self._history.setdefault(pid, deque(maxlen=SEASON))
            past.append(units)
            if self._days[pid] >= self.warmup_days:
                forecast = self.forecaster.forecast(pid)
                naive = seasonal_naive(past, horizon)
                if forecast is not None and naive is not None:
                    pending.append((day, forecast, naive))
            self._pending[pid] = pending
        self._dirty = True

    def publish(self, client: Any, prefix: str = "", ttl_s: int | None = None) -> int:
        """Write ``forecast:{product}`` for every product after a day was learned."""
        if not self._dirty:
            return 0
        self._dirty = False
        return self.forecaster.publish(client, prefix, ttl_s=_ttl(self.spec, ttl_s))

    def report(self) -> dict[str, Any]:
        """Counts, products and the seasonal naive baseline."""
        return {
            **super().report(),
            "products": len(self._first_day),
            "baseline": "seasonal naive (same weekday last week)",
        }


class RecoLearner(FamilyLearner):
    """Implicit feedback (views, add-to-carts, order items) into a River recommender (``reco:{customer}``).

    A recommendation scores every known product, so one purchase in ``eval_every`` (after ``warmup``) is
    scored, model and baseline alike.

    Examples
    --------
    >>> learner = build_family(PipelineSpec.shipped("recommendations"))
    >>> type(learner).__name__, learner.recommender.k
    ('RecoLearner', 10)
    """

    family = "reco"

    def __init__(
        self,
        spec: PipelineSpec,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        warmup: int = 500,
        eval_every: int = 4,
    ):
        super().__init__(spec, lateness_ms)
        self.warmup = warmup
        self.eval_every = eval_every
        m = spec.model
        k = m.top_k or 10
        model = build_estimator(m.type, "recommendation", m.hyperparameters)
        seed = m.hyperparameters.get("seed")
        self.recommender = Recommender(
            k=k,
            negatives=m.negatives if m.negatives is not None else 4,
            targets=m.targets,
            seed=seed if isinstance(seed, int) else 42,
            model=model,
        )
        self.popularity = PopularityRecommender(k=k)
        self.baseline_metrics = MetricSet(
            spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window
        )
        self.purchases = 0
        self._dirty: set[str] = set()

    def _learn(self, customer: str, product: str, kind: str) -> None:
        self.recommender.learn(customer, product, kind)
        self.popularity.learn(customer, product, kind)
        self.examples_learned += 1
        self._dirty.add(customer)

    def on_event(self, event: Any) -> None:
        """Learn a product view or an add-to-cart."""
        if event.product_id is None:
            return
        if event.type == "page_view":
            self._learn(event.customer_id, event.product_id, "view")
        elif event.type == "add_to_cart":
            self._learn(event.customer_id, event.product_id, "add_to_cart")

    def on_order(self, order: Any) -> None:
        """Score the recommendations the customer had against each product bought; learn the purchases."""
        for pid in dict.fromkeys(item.product_id for item in order.items):
            self.purchases += 1
            if self.purchases > self.warmup and self.purchases % self.eval_every == 0:
                self.metrics.update(pid, self.recommender.recommend(order.customer_id))
                assert self.baseline_metrics is not None
                self.baseline_metrics.update(pid, self.popularity.recommend(order.customer_id))
            self._learn(order.customer_id, pid, "purchase")

    def publish(self, client: Any, prefix: str = "", ttl_s: int | None = None) -> int:
        """Write ``reco:{customer}`` for the customers who did something since the last call."""
        who, self._dirty = self._dirty, set()
        if not who:
            return 0
        return self.recommender.publish(client, prefix, customers=sorted(who), ttl_s=_ttl(self.spec, ttl_s))

    def report(self) -> dict[str, Any]:
        """Counts and the popularity baseline."""
        return {**super().report(), "purchases": self.purchases, "baseline": "popularity (top k sold)"}


class PricingLearner(FamilyLearner):
    """Price visits joined with the orders they lead to; a bandit over the price points (``price:{product}``).

    Evaluation is the replay method: a visit scores the bandit when the bandit, asked at the visit, would
    have shown the logged price, and scores the baseline (uniformly random prices) when a seeded random
    draw equals the logged price; both estimates are unbiased when the logged prices were random, and
    their samples have the same expected size, so cumulative revenues compare. :meth:`report` adds the
    best fixed price per product in hindsight.

    Examples
    --------
    >>> learner = build_family(PipelineSpec.shipped("price_optimization"))
    >>> learner.optimizer.price_points
    (0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.5)
    """

    family = "pricing"

    def __init__(self, spec: PipelineSpec, lateness_ms: int = DEFAULT_LATENESS_MS):
        super().__init__(spec, lateness_ms)
        m = spec.model
        assert m.arms is not None  # the spec requires arms for a bandit
        hp = m.hyperparameters
        self.optimizer = PriceOptimizer(
            m.arms,
            {},
            {},
            alpha=float(hp.get("alpha", 1.0)),
            beta=float(hp.get("beta", 1.0)),
            policy=m.policy or "ucb",
            exploration=m.exploration if m.exploration is not None else 1.0,
            seed=int(hp.get("seed", 42)),
        )
        self.baseline_metrics = MetricSet(
            spec.evaluation.metrics, rolling_window=spec.evaluation.rolling_window
        )
        self.visits = 0
        self.unpriced_arms = 0
        self._rng = random.Random(int(hp.get("seed", 42)) + 1)
        self._pending: dict[tuple[str, str], tuple[int, PriceVisitEvent, float]] = {}
        self._queue: deque[tuple[int, tuple[str, str]]] = deque()
        self._by_arm: dict[str, list[list[float]]] = {}
        self._dirty = False

    def on_event(self, event: Any) -> None:
        """Open a price visit (a page view with a price multiplier)."""
        if event.type != "page_view":
            return
        visit = price_visit(event)
        if visit is None:
            return
        if visit.multiplier not in self.optimizer.price_points:
            self.unpriced_arms += 1
            return
        key = (event.customer_id, visit.product_id)
        if key in self._pending:
            self._resolve(key, 0.0)
        self.optimizer.list_prices[visit.product_id] = visit.list_price
        if visit.category is not None:
            self.optimizer.categories[visit.product_id] = visit.category
        chosen = self.optimizer.choose(visit.product_id, visit.segment)
        self._pending[key] = (event.event_time, visit, chosen)
        self._queue.append((event.event_time, key))

    def on_order(self, order: Any) -> None:
        """Reward the customer's open visits of the products ordered."""
        for item in order.items:
            key = (order.customer_id, item.product_id)
            open_visit = self._pending.get(key)
            if open_visit is not None and order.event_time - open_visit[0] <= VISIT_WINDOW_MS:
                self._resolve(key, item.unit_price * item.quantity)

    def advance(self, watermark_ms: int) -> None:
        """Visits whose window has passed earned nothing."""
        while self._queue and self._queue[0][0] + VISIT_WINDOW_MS + self.lateness_ms <= watermark_ms:
            t, key = self._queue.popleft()
            if key in self._pending and self._pending[key][0] == t:
                self._resolve(key, 0.0)

    def close(self) -> None:
        """Resolve every open visit (nothing more will be ordered)."""
        for key in list(self._pending):
            self._resolve(key, 0.0)
        self._queue.clear()

    def _resolve(self, key: tuple[str, str], revenue: float) -> None:
        _t, visit, chosen = self._pending.pop(key)
        assert self.baseline_metrics is not None
        if self._rng.choice(self.optimizer.price_points) == visit.multiplier:
            self.baseline_metrics.update(revenue, visit.list_price)
        if chosen == visit.multiplier:
            self.metrics.update(revenue, visit.list_price)
        arms = self._by_arm.setdefault(visit.product_id, [[0.0, 0.0] for _ in self.optimizer.price_points])
        cell = arms[self.optimizer.price_points.index(visit.multiplier)]
        cell[0] += revenue / visit.list_price
        cell[1] += 1
        self.optimizer.learn(visit.product_id, visit.segment, visit.multiplier, revenue)
        self.visits += 1
        self.examples_learned += 1
        self._dirty = True

    def best_fixed_mean_reward(self) -> float | None:
        """Mean reward a visit had the best price of each product (in hindsight) been shown to all."""
        total = n = 0.0
        for arms in self._by_arm.values():
            visits = sum(c[1] for c in arms)
            best = max((c[0] / c[1] for c in arms if c[1] > 0), default=0.0)
            total += best * visits
            n += visits
        return total / n if n else None

    def publish(self, client: Any, prefix: str = "", ttl_s: int | None = None) -> int:
        """Write ``price:{product}`` for every product with a list price after new rewards."""
        if not self._dirty:
            return 0
        self._dirty = False
        return self.optimizer.publish(client, prefix, ttl_s=_ttl(self.spec, ttl_s))

    def report(self) -> dict[str, Any]:
        """Counts, the replay sample and the best fixed price in hindsight."""
        return {
            **super().report(),
            "visits": self.visits,
            "replay_matched": self.metrics.n,
            "baseline": "random prices (replay)",
            "best_fixed_mean_reward": self.best_fixed_mean_reward(),
        }


class RankingLearner(FamilyLearner):
    """Search sessions (a search, its clicks and add-to-carts) into a click model (``rank:{query}``).

    The spec's classification metrics score P(click) of every shown product before the session is learned;
    :meth:`report` adds NDCG@10 of the model and of the popularity baseline on the same sessions.

    Examples
    --------
    >>> learner = build_family(PipelineSpec.shipped("search_ranking"))
    >>> type(learner).__name__
    'RankingLearner'
    """

    family = "ranking"

    def __init__(
        self, spec: PipelineSpec, lateness_ms: int = DEFAULT_LATENESS_MS, warmup: int = 200, top: int = 20
    ):
        super().__init__(spec, lateness_ms)
        unknown = [f for f in spec.data.features if f not in FEATURES]
        if unknown:
            msg = (
                f"{spec.name}: data.features {', '.join(map(repr, unknown))} are not computed by the search "
                f"ranker; known: {', '.join(FEATURES)}"
            )
            raise ConfigError(msg)
        self.warmup = warmup
        self.top = top
        self.ranker = SearchRanker({}, build_model(spec))
        self.popularity = PopularityRanker()
        self.sessions = 0
        self.ndcg_model = 0.0
        self.ndcg_baseline = 0.0
        self.ndcg_n = 0
        self._open: dict[str, tuple[int, str, tuple[str, ...], set[str], set[str]]] = {}
        self._queue: deque[tuple[int, str]] = deque()
        self._dirty: set[str] = set()

    def on_event(self, event: Any) -> None:
        """Open a session on a search; add clicks and add-to-carts to theirs."""
        if event.type == "search":
            search = search_event(event)
            if search is None:
                return
            self.ranker.add_products(search.products)
            shown = tuple(p for p in search.shown if self.ranker.knows(p))
            if shown:
                self._open[search.session_id] = (event.event_time, search.query, shown, set(), set())
                self._queue.append((event.event_time, search.session_id))
            return
        session_id = event.properties.get("session_id")
        if event.type not in ("click", "add_to_cart") or not isinstance(session_id, str):
            return
        session = self._open.get(session_id)
        if session is None:
            self.late_events += 1
            return
        if event.product_id is not None:
            (session[3] if event.type == "click" else session[4]).add(event.product_id)

    def advance(self, watermark_ms: int) -> None:
        """Learn the sessions whose window has passed."""
        while self._queue and self._queue[0][0] + SESSION_WINDOW_MS + self.lateness_ms <= watermark_ms:
            self._learn(self._queue.popleft()[1])

    def close(self) -> None:
        """Learn every open session."""
        while self._queue:
            self._learn(self._queue.popleft()[1])

    def _learn(self, session_id: str) -> None:
        _t, query, shown, clicks, buys = self._open.pop(session_id)
        self.sessions += 1
        for p in shown:
            self.metrics.update(p in clicks or p in buys, self.ranker.score(query, p))
        gains = {p: 1.0 for p in clicks}
        gains.update({p: 3.0 for p in buys})
        if self.sessions > self.warmup and gains:
            m = ndcg_at_k(self.ranker.rank(query, shown), gains)
            b = ndcg_at_k(self.popularity.rank(query, shown), gains)
            if m is not None and b is not None:
                self.ndcg_model += m
                self.ndcg_baseline += b
                self.ndcg_n += 1
        self.ranker.learn(query, shown, clicks, buys)
        self.popularity.learn(query, shown, clicks, buys)
        self.examples_learned += len(shown)
        self._dirty.add(query)

    def baseline_values(self) -> dict[str, float]:
        """NDCG@10 of the popularity baseline (the classification metrics have no baseline)."""
        return {"ndcg_at_10": self.ndcg_baseline / self.ndcg_n} if self.ndcg_n else {}

    def publish(self, client: Any, prefix: str = "", ttl_s: int | None = None) -> int:
        """Write ``rank:{query}`` for the queries learned since the last call."""
        queries, self._dirty = self._dirty, set()
        if not queries:
            return 0
        return self.ranker.publish(
            client, prefix, top=self.top, ttl_s=_ttl(self.spec, ttl_s), queries=sorted(queries)
        )

    def report(self) -> dict[str, Any]:
        """Counts and NDCG@10 of the model and of the popularity baseline."""
        return {
            **super().report(),
            "sessions": self.sessions,
            "ndcg_at_10": self.ndcg_model / self.ndcg_n if self.ndcg_n else None,
            "baseline_ndcg_at_10": self.ndcg_baseline / self.ndcg_n if self.ndcg_n else None,
            "baseline": "popularity (purchases, then clicks)",
        }


_LEARNERS: Mapping[str, type[FamilyLearner]] = {
    "demand": DemandLearner,
    "reco": RecoLearner,
    "pricing": PricingLearner,
    "ranking": RankingLearner,
}


def build_family(spec: PipelineSpec, **kwargs: Any) -> FamilyLearner:
    """A fresh learner for a family pipeline (``kwargs`` go to its class: ``lateness_ms``, ``warmup``...).

    Raises
    ------
    ConfigError
        When ``spec`` is not a family pipeline.

    Examples
    --------
    >>> build_family(PipelineSpec.shipped("price_optimization")).family
    'pricing'
    """
    family = spec.family
    if family is None:
        msg = (
            f"{spec.name}: not a model family (families: forecasting, recommendation, bandit tasks, or a "
            "classifier of data.source: sessions); per-entity pipelines run in the order processor"
        )
        raise ConfigError(msg)
    return _LEARNERS[family](spec, **kwargs)
