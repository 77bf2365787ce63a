"""Recommendations: River's BiasedMF learned online from purchases, add-to-carts and views; top k a customer.

Implicit feedback has no negatives, so each observed interaction is learned with a target by its kind
(purchase > add-to-cart > view) together with ``negatives`` products drawn at random from the products seen
so far, learned with target 0 (negative sampling). The baseline recommends the ``k`` most purchased
products so far to everyone. Both are scored by the hit rate at ``k``: before each purchase is learned, is
the product bought among the ``k`` recommended to that customer?
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import optim, reco

from hanzo.ml.learners.families.keys import family_key, write_json

logger = logging.getLogger(__name__)

__all__ = ["PopularityRecommender", "Recommender", "RecoScore", "evaluate_reco"]

#: Learning targets of implicit feedback by interaction kind.
DEFAULT_TARGETS: Mapping[str, float] = {"purchase": 1.0, "add_to_cart": 0.7, "view": 0.4}


class PopularityRecommender:
    """The baseline: the ``k`` most purchased products so far, for everyone.

    Examples
    --------
    >>> pop = PopularityRecommender(k=2)
    >>> for p in ["a", "b", "b", "c", "b", "a"]:
    ...     pop.learn("anyone", p, "purchase")
    >>> pop.recommend("someone")
    ['b', 'a']
    """

    def __init__(self, k: int = 10) -> None:
        self.k = k
        self._reset()

    def _reset(self) -> None:
        self._counts: Counter[str] = Counter()

    def learn(self, customer_id: str, product_id: str, kind: str) -> None:
        """Count a purchase (other kinds are ignored)."""
        if kind == "purchase":
            self._counts[product_id] += 1

    def recommend(self, customer_id: str, k: int | None = None) -> list[str]:
        """The most purchased products, best first."""
        return [p for p, _ in self._counts.most_common(k or self.k)]


class Recommender:
    """BiasedMF on implicit feedback with negative sampling; top-k products per customer.

    Parameters
    ----------
    k
        How many products a recommendation holds.
    n_factors
        Latent factors of River's ``reco.BiasedMF``.
    lr
        SGD learning rate of the latent factors and the biases.
    l2
        L2 penalty of the latent factors and the biases.
    negatives
        Random products learned with target 0 per interaction.
    targets
        Target by interaction kind (kinds not listed are ignored).
    seed
        Seed of the factor initialisation and of the negative sampling.
    model
        A River recommender to learn instead of the BiasedMF above (e.g. the one a pipeline spec's
        ``model`` section builds; it is cloned); ``n_factors``, ``lr`` and ``l2`` are then not used.

    Examples
    --------
    >>> r = Recommender(k=2, seed=1)
    >>> for _ in range(30):
    ...     r.learn("c1", "p1", "purchase"); r.learn("c2", "p2", "purchase"); r.learn("c2", "p3", "view")
    >>> r.recommend("c1")[0], len(r.recommend("c2"))
    ('p1', 2)
    """

    def __init__(
        self,
        k: int = 10,
        n_factors: int = 8,
        lr: float = 0.05,
        l2: float = 0.01,
        negatives: int = 4,
        targets: Mapping[str, float] | None = None,
        seed: int = 42,
        model: Any | None = None,
    ) -> None:
        self.k = k
        self.n_factors = n_factors
        self.lr = lr
        self.l2 = l2
        self.negatives = negatives
        self.targets = targets
        self.seed = seed
        self.model = model
        self._reset()

    def _reset(self) -> None:
        if self.model is not None:
            self._mf = self.model.clone()
        else:
            self._mf = self._default_model()
        self._targets = dict(self.targets if self.targets is not None else DEFAULT_TARGETS)
        self._rng = random.Random(self.seed)
        self._items: list[str] = []
        self._known: set[str] = set()
        self._customers: set[str] = set()

    def _default_model(self) -> Any:
        return reco.BiasedMF(
            n_factors=self.n_factors,
            bias_optimizer=optim.SGD(self.lr),
            latent_optimizer=optim.SGD(self.lr),
            l2_bias=self.l2,
            l2_latent=self.l2,
            weight_initializer=optim.initializers.Zeros(),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=self.seed),
            seed=self.seed,
        )

    def learn(self, customer_id: str, product_id: str, kind: str) -> None:
        """Learn one interaction (and ``negatives`` sampled non-interactions)."""
        target = self._targets.get(kind)
        if target is None:
            return
        if product_id not in self._known:
            self._known.add(product_id)
            self._items.append(product_id)
        self._customers.add(customer_id)
        self._mf.learn_one(customer_id, product_id, target)
        for _ in range(self.negatives):
            other = self._items[int(self._rng.random() * len(self._items))]
            if other != product_id:
                self._mf.learn_one(customer_id, other, 0.0)

    def scores(self, customer_id: str) -> dict[str, float]:
        """The model's score of every known product for ``customer_id``."""
        mf = self._mf
        if isinstance(mf, reco.BiasedMF) and self._items:
            # predict_one for every item at once (the same sums, vectorised)
            user = mf.global_mean.get() + mf.u_biases[customer_id]
            latents = np.array([mf.i_latents[p] for p in self._items])
            biases = np.array([mf.i_biases[p] for p in self._items])
            values = user + biases + latents @ mf.u_latents[customer_id]
            return dict(zip(self._items, values.tolist(), strict=True))
        predict = mf.predict_one
        return {p: float(predict(customer_id, p)) for p in self._items}

    def recommend(self, customer_id: str, k: int | None = None) -> list[str]:
        """The ``k`` best-scored products for ``customer_id``, best first."""
        scores = self.scores(customer_id)
        return sorted(scores, key=lambda p: (-scores[p], p))[: k or self.k]

    def publish(
        self, client: Any, prefix: str = "", customers: Iterable[str] | None = None, ttl_s: int = 86_400
    ) -> int:
        """Write ``{prefix}reco:{customer}`` (JSON list of ``k`` product ids) for ``customers`` (or all)."""
        who = self._customers if customers is None else customers
        return write_json(client, ((family_key("reco", c, prefix), self.recommend(c)) for c in who), ttl_s)


@dataclass(frozen=True)
class RecoScore:
    """Hit rate at k of the model and of the popularity baseline over the same purchases."""

    model_hit_rate: float
    baseline_hit_rate: float
    purchases: int


def evaluate_reco(
    interactions: Iterable[tuple[str, str, str]],
    model: Recommender,
    baseline: PopularityRecommender,
    warmup: int = 500,
) -> RecoScore:
    """Progressive hit rate at k on ``(customer, product, kind)`` in time order: recommend, then learn.

    Purchases among the first ``warmup`` are learned but not scored.
    """
    hits_model = hits_base = n = purchases = 0
    for customer, product, kind in interactions:
        if kind == "purchase":
            purchases += 1
            if purchases > warmup:
                hits_model += product in model.recommend(customer)
                hits_base += product in baseline.recommend(customer)
                n += 1
        model.learn(customer, product, kind)
        baseline.learn(customer, product, kind)
    if n == 0:
        return RecoScore(float("nan"), float("nan"), 0)
    return RecoScore(hits_model / n, hits_base / n, n)
