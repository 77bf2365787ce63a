"""Search ranking: a click model over (query, product) features against popularity."""

import pytest

from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.families import (
    PopularityRanker,
    ProductInfo,
    SearchRanker,
    evaluate_ranking,
    ndcg_at_k,
)
from hanzo.ml.learners.families.ranking import FEATURES
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig


def test_ndcg() -> None:
    assert ndcg_at_k(["a", "b"], {}) is None
    assert ndcg_at_k(["a", "b"], {"a": 3.0, "b": 1.0}) == 1.0
    expected = (1 + 3 / 1.58496) / (3 + 1 / 1.58496)
    assert ndcg_at_k(["b", "a"], {"a": 3.0, "b": 1.0}) == pytest.approx(expected, 1e-4)


def test_shipped_pipeline_lists_the_features_the_ranker_computes() -> None:
    spec = PipelineSpec.shipped("search_ranking")
    assert spec.data.features == FEATURES
    ranker = SearchRanker({"p": ProductInfo("books", 10.0, frozenset({"cheap"}))})
    assert set(ranker.features("books cheap", "p")) == set(FEATURES)


def test_click_model_beats_popularity() -> None:
    shop = ShopSimulator(ShopSimulatorConfig(seed=4, sessions=1000))
    catalog = {p: ProductInfo(sp.category, sp.list_price, sp.tags) for p, sp in shop.products.items()}
    ranker = SearchRanker(catalog, build_model(PipelineSpec.shipped("search_ranking")))
    score = evaluate_ranking(shop.sessions(), ranker, PopularityRanker())
    assert score.sessions > 500
    assert score.model_ndcg > score.baseline_ndcg
