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
"""

from learners.families.demand import DemandForecaster, DemandScore, evaluate_demand, seasonal_naive
from learners.families.keys import family_key, write_json
from learners.families.pricing import PriceOptimizer, PriceScore, evaluate_pricing
from learners.families.ranking import (
    PopularityRanker,
    ProductInfo,
    RankScore,
    SearchRanker,
    evaluate_ranking,
    ndcg_at_k,
)
from learners.families.reco import PopularityRecommender, Recommender, RecoScore, evaluate_reco

__all__ = [
    "DemandForecaster",
    "DemandScore",
    "PopularityRanker",
    "PopularityRecommender",
    "PriceOptimizer",
    "PriceScore",
    "ProductInfo",
    "RankScore",
    "RecoScore",
    "Recommender",
    "SearchRanker",
    "evaluate_demand",
    "evaluate_pricing",
    "evaluate_ranking",
    "evaluate_reco",
    "family_key",
    "ndcg_at_k",
    "seasonal_naive",
    "write_json",
]
