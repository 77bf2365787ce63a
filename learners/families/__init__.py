"""Commerce model families beyond per-entity scoring: demand, recommendations, pricing and search ranking.

Each family learns online from a stream, is scored against an honest baseline by a progressive evaluation,
and writes what a shop reads to Redis (keys in :mod:`learners.families.keys`):

- :mod:`learners.families.demand` -- :class:`DemandForecaster` (River SNARIMAX per product),
  ``forecast:{product}``; baseline :func:`seasonal_naive`; MAE.
- :mod:`learners.families.reco` -- :class:`Recommender` (River BiasedMF), ``reco:{customer}``;
  baseline :class:`PopularityRecommender`; hit rate at 10.
- :mod:`learners.families.pricing` -- :class:`PriceOptimizer` (River LinUCB over price points),
  ``price:{product}``; baselines best fixed price in hindsight and random prices; cumulative revenue.
- :mod:`learners.families.ranking` -- :class:`SearchRanker` (a River classifier of clicks),
  ``rank:{query}``; baseline :class:`PopularityRanker`; NDCG@10.

:mod:`learners.families.streaming` runs them on the order and event stream from a pipeline spec
(:func:`build_family`), for ``hanzo-ml train`` and the worker (``streams.family_agent``); the shop's event
conventions are in :mod:`learners.families.events`.
"""

from hanzo.ml.learners.families.demand import DemandForecaster, DemandScore, evaluate_demand, seasonal_naive
from hanzo.ml.learners.families.events import price_visit, search_event, search_properties
from hanzo.ml.learners.families.keys import family_key, write_json
from hanzo.ml.learners.families.pricing import PriceOptimizer, PriceScore, evaluate_pricing
from hanzo.ml.learners.families.ranking import (
    PopularityRanker,
    ProductInfo,
    RankScore,
    SearchRanker,
    evaluate_ranking,
    ndcg_at_k,
)
from hanzo.ml.learners.families.reco import PopularityRecommender, Recommender, RecoScore, evaluate_reco
from hanzo.ml.learners.families.streaming import (
    DemandLearner,
    FamilyLearner,
    PricingLearner,
    RankingLearner,
    RecoLearner,
    build_family,
)

__all__ = [
    "DemandForecaster",
    "DemandLearner",
    "DemandScore",
    "FamilyLearner",
    "PopularityRanker",
    "PopularityRecommender",
    "PriceOptimizer",
    "PriceScore",
    "PricingLearner",
    "ProductInfo",
    "RankScore",
    "RankingLearner",
    "RecoLearner",
    "RecoScore",
    "Recommender",
    "SearchRanker",
    "build_family",
    "evaluate_demand",
    "evaluate_pricing",
    "evaluate_ranking",
    "evaluate_reco",
    "family_key",
    "ndcg_at_k",
    "price_visit",
    "search_event",
    "search_properties",
    "seasonal_naive",
    "write_json",
]
