"""Search ranking: a River classifier of clicks over (query, product) features; a ranked list per query.

Features of a (query, product) pair: whether the query's word is in the product's title tags, the product's
log price relative to its category's median (alone and crossed with each query word, so a model can learn
that "cheap" wants low prices and "premium" high ones), and behaviour learned so far (smoothed click-through
rates of the product and of the pair, log purchases). The baseline ranks by purchases so far (then clicks).
Both are scored by NDCG@10 of each session's shown products, gains 1 per click and 3 per purchase, ranked
before the session is learned (progressive, so every session is held out when it is scored).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from river import compose, linear_model, optim, preprocessing

from hanzo.ml.learners.families.keys import family_key, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "ProductInfo",
    "PopularityRanker",
    "RankScore",
    "SearchRanker",
    "evaluate_ranking",
    "ndcg_at_k",
    "ranking_features",
]

WORDS = ("deal", "new", "best", "cheap", "gift", "sale", "premium", "set", "kids", "pro")
#: The features :class:`SearchRanker` computes, in the order of ``config/pipelines/search_ranking.yaml``.
FEATURES = (
    "text_match",
    "log_price_ratio",
    "product_ctr",
    "query_product_ctr",
    "log_purchases",
    *(f"price_x_{w}" for w in WORDS),
)


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """What the ranker knows of a product from the catalogue: category, price and title tags."""

    category: str
    price: float
    tags: frozenset[str]


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float | None:
    """NDCG@k of ``ranking`` given graded ``gains`` (None when nothing has a gain).

    Examples
    --------
    >>> ndcg_at_k(["a", "b", "c"], {"a": 1.0}), round(ndcg_at_k(["b", "a"], {"a": 1.0}), 3)
    (1.0, 0.631)
    """
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return None
    dcg = sum(gains.get(p, 0.0) / math.log2(i + 2) for i, p in enumerate(ranking[:k]))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


class _Behaviour:
    """Impressions, clicks and purchases counted so far, by product and by (query, product)."""

    def __init__(self) -> None:
        self.shown: Counter[str] = Counter()
        self.clicks: Counter[str] = Counter()
        self.buys: Counter[str] = Counter()
        self.pair_shown: Counter[tuple[str, str]] = Counter()
        self.pair_clicks: Counter[tuple[str, str]] = Counter()

    def add(self, query: str, shown: Iterable[str], clicks: set[str], buys: set[str]) -> None:
        for p in shown:
            self.shown[p] += 1
            self.pair_shown[query, p] += 1
            if p in clicks:
                self.clicks[p] += 1
                self.pair_clicks[query, p] += 1
            if p in buys:
                self.buys[p] += 1


def ranking_features(
    query: str, product: str, info: ProductInfo, median_price: float, behaviour: _Behaviour
) -> dict[str, float]:
    """The features of one (query, product) pair (see the module docstring)."""
    word = query.rsplit(" ", 1)[-1]
    ratio = math.log(info.price / median_price) if median_price > 0 and info.price > 0 else 0.0
    x = {f"price_x_{w}": 0.0 for w in WORDS}
    if word in WORDS:
        x[f"price_x_{word}"] = ratio
    prior = 0.1
    shown, pair = behaviour.shown[product], behaviour.pair_shown[query, product]
    x.update(
        text_match=float(word in info.tags),
        log_price_ratio=ratio,
        product_ctr=(behaviour.clicks[product] + prior * 10) / (shown + 10),
        query_product_ctr=(behaviour.pair_clicks[query, product] + prior * 5) / (pair + 5),
        log_purchases=math.log1p(behaviour.buys[product]),
    )
    return x


class SearchRanker:
    """A click model over (query, product) features; ranks a query's candidates by P(click).

    Parameters
    ----------
    catalog
        ``{product_id: ProductInfo}`` known from the start; :meth:`add_products` adds or updates products
        as the stream describes them (a search event lists what it shows).
    model
        A River classifier (default ``StandardScaler | LogisticRegression(SGD(0.02))``; the pipeline
        ``search_ranking`` builds it with ``learners.factory.build_model``).

    Examples
    --------
    >>> cat = {"a": ProductInfo("books", 5.0, frozenset({"cheap"})),
    ...        "b": ProductInfo("books", 30.0, frozenset())}
    >>> r = SearchRanker(cat)
    >>> for _ in range(50):
    ...     r.learn("books cheap", ["a", "b"], clicks={"a"})
    >>> r.rank("books cheap", ["b", "a"])
    ['a', 'b']
    """

    def __init__(self, catalog: Mapping[str, ProductInfo], model: Any | None = None) -> None:
        self.catalog = catalog
        self.model = model
        self._reset()

    def _reset(self) -> None:
        self._model = (
            self.model
            if self.model is not None
            else compose.Pipeline(
                preprocessing.StandardScaler(), linear_model.LogisticRegression(optimizer=optim.SGD(0.02))
            )
        )
        self._catalog: dict[str, ProductInfo] = dict(self.catalog)
        self._median: dict[str, float] = {}
        self._update_medians({info.category for info in self._catalog.values()})
        self.behaviour = _Behaviour()
        self._queries: dict[str, set[str]] = {}

    def _update_medians(self, categories: Iterable[str]) -> None:
        for c in set(categories):
            self._median[c] = median(i.price for i in self._catalog.values() if i.category == c)

    def add_products(self, products: Mapping[str, ProductInfo]) -> None:
        """Add (or update) products of the catalogue; their categories' median prices follow."""
        changed = {info.category for pid, info in products.items() if self._catalog.get(pid) != info}
        changed |= {self._catalog[pid].category for pid in products if pid in self._catalog}
        if changed:
            self._catalog.update(products)
            self._update_medians(changed)

    def knows(self, product: str) -> bool:
        """Whether ``product`` is in the catalogue."""
        return product in self._catalog

    def features(self, query: str, product: str) -> dict[str, float]:
        """The model's features of ``(query, product)``."""
        info = self._catalog[product]
        return ranking_features(query, product, info, self._median[info.category], self.behaviour)

    def score(self, query: str, product: str) -> float:
        """P(click) of ``product`` for ``query``."""
        proba = self._model.predict_proba_one(self.features(query, product))
        return float(proba.get(True, 0.0))

    def rank(self, query: str, candidates: Iterable[str]) -> list[str]:
        """``candidates`` best first."""
        scored = {p: self.score(query, p) for p in candidates}
        return sorted(scored, key=lambda p: (-scored[p], p))

    def learn(
        self, query: str, shown: Sequence[str], clicks: Iterable[str] = (), purchases: Iterable[str] = ()
    ) -> None:
        """Learn one session: every shown product is an example (clicked or not), then count behaviour."""
        clicked, bought = set(clicks), set(purchases)
        for p in shown:
            self._model.learn_one(self.features(query, p), p in clicked or p in bought)
        self.behaviour.add(query, shown, clicked | bought, bought)
        self._queries.setdefault(query, set()).update(shown)

    def publish(
        self,
        client: Any,
        prefix: str = "",
        top: int = 20,
        ttl_s: int = 86_400,
        queries: Iterable[str] | None = None,
    ) -> int:
        """Write ``{prefix}rank:{query}`` (JSON list of the ``top`` product ids) for ``queries`` (or all)."""
        who = self._queries if queries is None else [q for q in queries if q in self._queries]
        items = ((family_key("rank", q, prefix), self.rank(q, self._queries[q])[:top]) for q in who)
        return write_json(client, items, ttl_s)


class PopularityRanker:
    """The baseline: rank by purchases so far, then by clicks.

    Examples
    --------
    >>> pop = PopularityRanker()
    >>> pop.learn("q", ["a", "b"], clicks={"b"})
    >>> pop.rank("q", ["a", "b"])
    ['b', 'a']
    """

    def __init__(self) -> None:
        self.behaviour = _Behaviour()

    def rank(self, query: str, candidates: Iterable[str]) -> list[str]:
        """``candidates`` by purchases, then clicks, then id."""
        b = self.behaviour
        return sorted(candidates, key=lambda p: (-b.buys[p], -b.clicks[p], p))

    def learn(
        self, query: str, shown: Sequence[str], clicks: Iterable[str] = (), purchases: Iterable[str] = ()
    ) -> None:
        """Count the session's clicks and purchases."""
        bought = set(purchases)
        self.behaviour.add(query, shown, set(clicks) | bought, bought)


@dataclass(frozen=True)
class RankScore:
    """Mean NDCG@10 of the model and of the popularity baseline over the same sessions."""

    model_ndcg: float
    baseline_ndcg: float
    sessions: int


def evaluate_ranking(
    sessions: Iterable[Any], model: SearchRanker, baseline: PopularityRanker, warmup: int = 200, k: int = 10
) -> RankScore:
    """Progressive NDCG@k over sessions (``query``, ``shown``, ``clicks``, ``purchases``): rank, then learn.

    Sessions without a click have no NDCG and are learned only; the first ``warmup`` are not scored.
    """
    total_model = total_base = 0.0
    n = seen = 0
    for s in sessions:
        seen += 1
        gains = {p: 1.0 for p in s.clicks}
        gains.update({p: 3.0 for p in s.purchases})
        if seen > warmup and gains:
            m = ndcg_at_k(model.rank(s.query, s.shown), gains, k)
            b = ndcg_at_k(baseline.rank(s.query, s.shown), gains, k)
            if m is not None and b is not None:
                total_model += m
                total_base += b
                n += 1
        model.learn(s.query, s.shown, s.clicks, s.purchases)
        baseline.learn(s.query, s.shown, s.clicks, s.purchases)
    if n == 0:
        return RankScore(float("nan"), float("nan"), 0)
    return RankScore(total_model / n, total_base / n, n)
