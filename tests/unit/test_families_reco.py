"""Recommendations: BiasedMF with negative sampling against popularity."""

from hanzo.ml.learners.families import PopularityRecommender, Recommender, evaluate_reco
from hanzo.ml.streams.simulation.shop import ShopSimulator, ShopSimulatorConfig


def test_recommends_k_distinct_known_products() -> None:
    r = Recommender(k=3, seed=2)
    for p in ["a", "b", "c", "d"]:
        r.learn("c1", p, "view")
    r.learn("c1", "a", "purchase")
    recs = r.recommend("c1")
    assert len(recs) == 3 and len(set(recs)) == 3 and set(recs) <= {"a", "b", "c", "d"}
    r.learn("c1", "z", "unknown-kind")  # kinds without a target are ignored
    assert "z" not in r.recommend("c1", k=10)


def test_popularity_counts_purchases_only() -> None:
    pop = PopularityRecommender(k=1)
    pop.learn("c", "a", "view")
    pop.learn("c", "a", "view")
    pop.learn("c", "b", "purchase")
    assert pop.recommend("anyone") == ["b"]


def test_personal_taste_beats_popularity() -> None:
    shop = ShopSimulator(ShopSimulatorConfig(seed=5, purchases=2000, customers=200))
    stream = ((i.customer_id, i.product_id, i.kind) for i in shop.interactions())
    score = evaluate_reco(stream, Recommender(), PopularityRecommender(), warmup=300)
    assert score.purchases == 1700
    assert score.model_hit_rate > score.baseline_hit_rate
