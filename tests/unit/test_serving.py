"""ServingEngine on the in-memory feature store: predictions, micro-batching, cache, errors, hot reload."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from river import compose, linear_model, preprocessing

from hanzo.ml.config.errors import ConfigError, ValidationError
from hanzo.ml.features import EventRecord, FeatureStore, InMemoryOnlineStore
from hanzo.ml.learners.factory import build_model
from hanzo.ml.learners.online import OnlineLearner
from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.learners.serving_models import UnknownModelError, flat_scorer, scorer_for
from hanzo.ml.learners.spec import PipelineSpec
from hanzo.ml.registry import Registry
from hanzo.ml.schemas.events import Order, OrderItem
from hanzo.ml.streams.runtime import resolve_spec_path

T0 = 1_700_000_000_000
FEATURES = ["orders_24h", "spend_24h", "lifetime_spend", "order_total"]


async def until(what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` every 10 ms while the loop runs; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(0.01)


class CountingStore:
    """The real feature store, counting the batched reads that reach it."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.calls: list[list[str]] = []

    def get_features_batch(self, entity: str, ids: Sequence[str], features=None, as_of_ms=None):  # type: ignore[no-untyped-def]
        self.calls.append(list(ids))
        return self.store.get_features_batch(entity, ids, features=features, as_of_ms=as_of_ms)

    def list_features(self):  # type: ignore[no-untyped-def]
        return self.store.list_features()


def order(oid: str, customer: str, total: float, t: int) -> Order:
    return Order(
        order_id=oid,
        customer_id=customer,
        event_time=t,
        total=total,
        currency="EUR",
        items=[OrderItem(product_id="p1", category="books", quantity=1, unit_price=total)],
        payment_method="card",
        billing_country="DE",
        shipping_country="DE",
        channel="web",
    )


def trained(scale: float) -> OnlineLearner:
    """A small fraud-like model; ``scale`` changes what it learned, so two versions score differently."""
    learner = OnlineLearner("fraud", preprocessing.StandardScaler() | linear_model.LogisticRegression())
    for i in range(200):
        total = 10.0 + (i % 20) * 25.0
        x = {
            "orders_24h": float(i % 5),
            "spend_24h": total * (i % 5),
            "lifetime_spend": 100.0 + i,
            "order_total": total,
        }
        learner.learn_one(x, (total * scale) > 250.0)
    return learner


@pytest.fixture
def store() -> FeatureStore:
    s = FeatureStore(backend=InMemoryOnlineStore(), clock=lambda: T0 / 1000 + 60)
    records = [EventRecord(order(f"o{i}", f"c{i % 10}", 20.0 + i, T0 + i * 1000)) for i in range(50)]
    s.apply_batch("customer", records)
    return s


@pytest.fixture
def counting(store: FeatureStore) -> CountingStore:
    return CountingStore(store)


async def test_predict_reads_stored_features_and_takes_request_values(store: FeatureStore) -> None:
    model = trained(1.0)
    engine = ServingEngine(store)
    engine.register("fraud", model, FEATURES, version="1.0.0")
    p = await engine.apredict(model="fraud", features={"customer_id": "c3", "order_total": 120.0})
    stored = store.get_features(customer_id="c3", features=["orders_24h", "spend_24h", "lifetime_spend"])
    assert p.features == {**stored, "order_total": 120.0}
    assert stored["orders_24h"] == 5.0  # c3 placed orders 3, 13, 23, 33, 43
    assert p.score == pytest.approx(model.score(p.features))
    assert (p.model, p.version, p.entity_id, p.cached) == ("fraud", "1.0.0", "c3", False)
    # a request-time value overrides the stored one; keys the model does not use are reported
    q = await engine.apredict(model="fraud", features={"customer_id": "c3", "orders_24h": 0.0, "coupon": "x"})
    assert q.features["orders_24h"] == 0.0 and "order_total" not in q.features
    assert q.ignored == ("coupon",)
    assert q.score == pytest.approx(model.score(q.features))


async def test_unknown_entity_gets_the_store_defaults(store: FeatureStore) -> None:
    engine = ServingEngine(store)
    engine.register("fraud", trained(1.0), FEATURES)
    p = await engine.apredict(model="fraud", features={"customer_id": "nobody", "order_total": 5.0})
    assert p.features == {"orders_24h": 0.0, "spend_24h": 0.0, "lifetime_spend": 0.0, "order_total": 5.0}
    assert p.entity_found is None  # the batched read cannot tell an unknown entity from a quiet one


async def test_concurrent_callers_share_one_store_read(store: FeatureStore, counting: CountingStore) -> None:
    engine = ServingEngine(counting, max_batch=64)
    engine.register("fraud", trained(1.0), FEATURES)
    requests = [{"customer_id": f"c{i % 10}", "order_total": float(i)} for i in range(40)]
    results = await asyncio.gather(*(engine.apredict("fraud", r) for r in requests))
    assert len(counting.calls) == 1
    assert sorted(counting.calls[0]) == sorted(f"c{i}" for i in range(10))  # each entity read once
    for r, p in zip(requests, results, strict=True):
        alone = ServingEngine(store, cache_size=0)
        alone.register("fraud", engine.served("fraud").model, FEATURES)
        assert p.entity_id == r["customer_id"] and p.features["order_total"] == r["order_total"]
        assert p.score == alone.predict("fraud", r).score


async def test_batches_are_capped_at_max_batch(counting: CountingStore) -> None:
    engine = ServingEngine(counting, max_batch=16, cache_size=0)
    engine.register("fraud", trained(1.0), FEATURES)
    results = await asyncio.gather(*(engine.apredict("fraud", {"customer_id": f"c{i}"}) for i in range(40)))
    assert len(results) == 40
    assert [len(c) for c in counting.calls] == [16, 16, 8]


async def test_cache_hits_until_the_entity_features_change(
    store: FeatureStore, counting: CountingStore
) -> None:
    engine = ServingEngine(counting)
    engine.register("fraud", trained(1.0), FEATURES, version="1.0.0")
    request = {"customer_id": "c1", "order_total": 80.0}
    first = await engine.apredict("fraud", request)
    second = await engine.apredict("fraud", request)
    assert (first.cached, second.cached) == (False, True)
    assert second.score == first.score
    other = await engine.apredict("fraud", {"customer_id": "c1", "order_total": 81.0})
    assert not other.cached  # other request-time values, other entry
    store.apply_batch("customer", [EventRecord(order("new", "c1", 400.0, T0 + 100_000))])
    after = await engine.apredict("fraud", request)
    assert not after.cached
    assert after.features["orders_24h"] == first.features["orders_24h"] + 1
    assert (await engine.apredict("fraud", request)).cached
    assert len(counting.calls) == 5  # the store is read every time: that is how a change is seen


async def test_cache_misses_after_a_new_model_version(store: FeatureStore) -> None:
    engine = ServingEngine(store)
    engine.register("fraud", trained(1.0), FEATURES, version="1.0.0")
    request = {"customer_id": "c2", "order_total": 300.0}
    await engine.apredict("fraud", request)
    assert (await engine.apredict("fraud", request)).cached
    new_model = trained(0.5)
    engine.register("fraud", new_model, FEATURES, version="1.1.0")
    p = await engine.apredict("fraud", request)
    assert (p.cached, p.version) == (False, "1.1.0")
    assert p.score == pytest.approx(new_model.score(p.features))


async def test_unknown_model_names_it_and_lists_the_served_ones(store: FeatureStore) -> None:
    engine = ServingEngine(store)
    engine.register("fraud", trained(1.0), FEATURES)
    engine.register("churn", trained(1.0), ["orders_7d"])
    with pytest.raises(UnknownModelError, match=r"unknown model 'frod'; served models: churn, fraud"):
        await engine.apredict(model="frod", features={"customer_id": "c1"})
    with pytest.raises(UnknownModelError, match="frod"):
        engine.predict("frod", {"customer_id": "c1"})


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"order_total": 1.0}, "give 'customer_id' as a non-empty string"),
        ({"customer_id": ""}, "give 'customer_id'"),
        ({"customer_id": "c1", "order_total": float("nan")}, "'order_total' = nan is not a finite number"),
        ({"customer_id": "c1", "extra": float("inf")}, "'extra' = inf is not a finite number"),
        ({"customer_id": "c1", "order_total": [1, 2]}, "'order_total' = \\[1, 2\\] is a list"),
    ],
)
async def test_bad_requests_are_refused_by_name(store: FeatureStore, features: dict, message: str) -> None:
    engine = ServingEngine(store)
    engine.register("fraud", trained(1.0), FEATURES)
    with pytest.raises(ValidationError, match=message):
        await engine.apredict("fraud", features)


def test_register_checks_features_and_entity(store: FeatureStore) -> None:
    engine = ServingEngine(store)
    with pytest.raises(ConfigError, match="'product_orders_24h' belongs to entity 'product', not 'customer'"):
        engine.register("fraud", trained(1.0), ["order_total", "product_orders_24h"])
    with pytest.raises(ConfigError, match="entity 'shop'"):
        engine.register("fraud", trained(1.0), FEATURES, entity="shop")
    with pytest.raises(ConfigError, match="non-empty list"):
        engine.register("fraud", trained(1.0), "orders_24h")
    with pytest.raises(ConfigError, match="this ServingEngine has no redis_client"):
        engine.lookup_score("fraud", "o1")


@pytest.mark.parametrize("reads", ["inline", "async"])
async def test_hot_reload_swaps_between_batches_without_failed_requests(
    store: FeatureStore, tmp_path: Path, reads: str
) -> None:
    registry = Registry(tmp_path)
    old_model, new_model = trained(1.0), trained(0.4)
    v1 = registry.register(old_model, "fraud", version="1.0.0", metadata={"features": FEATURES})
    registry.promote("fraud", v1.version)
    served = store if reads == "inline" else SlowStore(store, seconds=0.002)
    engine = ServingEngine(served, registry=registry, cache_size=0, max_batch=4)
    engine.follow("fraud", every_s=0.01)
    await until("the first version served", lambda: bool(engine.models()))
    assert [m["version"] for m in engine.models()] == ["1.0.0"]

    answers: list[tuple[str | None, float, dict]] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def caller(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                request = {"customer_id": f"c{(i + n) % 12}", "order_total": 10.0 * n}
                p = await engine.apredict("fraud", request)
            except Exception as exc:
                errors.append(exc)
                continue
            answers.append((p.version, p.score, p.features))

    def answered(version: str) -> int:
        return sum(v == version for v, _, _ in answers)

    callers = [asyncio.create_task(caller(i)) for i in range(8)]
    # the checks below look at the 20 answers either side of the switch: wait for them, not for a time
    await until("20 answers from 1.0.0", lambda: answered("1.0.0") >= 20)
    v2 = await asyncio.to_thread(registry.register, new_model, "fraud", "1.1.0", {"features": FEATURES})
    await asyncio.to_thread(registry.promote, "fraud", v2.version)
    await until("the reload of 1.1.0", lambda: engine.served("fraud").version == "1.1.0")
    await until("20 answers from 1.1.0", lambda: answered("1.1.0") >= 20)
    stop.set()
    await asyncio.gather(*callers)
    await engine.close()

    assert errors == []
    versions = [v for v, _, _ in answers]
    assert set(versions) == {"1.0.0", "1.1.0"}
    switch = versions.index("1.1.0")
    assert all(v == "1.0.0" for v in versions[:switch]) and all(v == "1.1.0" for v in versions[switch:])
    # each answer was scored by the model its version names, never a mix
    for version, score, x in answers[switch - 20 : switch + 20]:
        expected = (old_model if version == "1.0.0" else new_model).score(x)
        assert score == pytest.approx(expected)
    assert engine.reloads == 2 and engine.reload_errors == 0


async def test_follow_keeps_serving_when_the_registry_fails(store: FeatureStore, tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    v1 = registry.register(trained(1.0), "fraud", version="1.0.0", metadata={"features": FEATURES})
    registry.promote("fraud", v1.version)
    engine = ServingEngine(store, registry=registry)
    assert await engine.reload("fraud")
    assert not await engine.reload("fraud")  # same version and sha256: nothing to do
    artifact = tmp_path / "models" / "fraud" / "versions" / "1.1.0" / "model.pkl"
    v2 = registry.register(trained(0.4), "fraud", version="1.1.0", metadata={"features": FEATURES})
    registry.promote("fraud", v2.version)
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    engine.follow("fraud", every_s=0.01)
    await until("a failed reload", lambda: engine.reload_errors >= 1)
    await engine.close()
    assert engine.reload_errors >= 1
    assert engine.served("fraud").version == "1.0.0"
    p = await engine.apredict("fraud", {"customer_id": "c1"})
    assert p.version == "1.0.0"


class SlowStore(CountingStore):
    """The real store, with an asynchronous reader whose reads take a while, as a Redis round trip does.

    Reads start in order, each sleeps ``seconds`` without blocking the loop (the later to start sleeps
    less, so a later read can finish first); how many run at once is counted.
    """

    def __init__(self, store: FeatureStore, seconds: float) -> None:
        super().__init__(store)
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0
        self.finished: list[int] = []
        self.readers = 0
        self.closed = 0

    def async_reader(self) -> SlowReader:
        self.readers += 1
        return SlowReader(self)


class SlowReader:
    def __init__(self, slow: SlowStore) -> None:
        self.slow = slow

    async def get_features_batch(self, entity: str, ids: Sequence[str], features=None, as_of_ms=None):  # type: ignore[no-untyped-def]
        slow = self.slow
        n = len(slow.calls)
        rows = slow.get_features_batch(entity, ids, features=features, as_of_ms=as_of_ms)
        slow.running += 1
        slow.most_at_once = max(slow.most_at_once, slow.running)
        await asyncio.sleep(slow.seconds / slow.running)
        slow.running -= 1
        slow.finished.append(n)
        return rows

    async def aclose(self) -> None:
        self.slow.closed += 1


async def test_async_reads_keep_the_loop_free_split_batches_and_answer_in_order(store: FeatureStore) -> None:
    slow = SlowStore(store, seconds=0.05)
    engine = ServingEngine(slow, max_batch=16, max_inflight=2, cache_size=0)
    engine.register("fraud", trained(1.0), FEATURES)
    ticks = 0

    async def ticker() -> None:  # runs only while the loop is free
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick = asyncio.create_task(ticker())
    requests = [{"customer_id": f"c{i}", "order_total": float(i)} for i in range(60)]  # c10...: defaults
    answered: list[int] = []
    results = {}

    async def ask(i: int) -> None:
        results[i] = await engine.apredict("fraud", requests[i])
        answered.append(i)

    first = [asyncio.create_task(ask(i)) for i in range(20)]
    # the 16th waiting request fills a batch: it is split over the two free read slots, 4 more wait
    await asyncio.sleep(0.01)
    await asyncio.gather(*first, *(ask(i) for i in range(20, 60)))
    tick.cancel()
    await engine.close()
    assert ticks >= 5  # the loop ran during the reads
    assert slow.most_at_once == 2
    assert [len(c) for c in slow.calls[:2]] == [8, 8]
    assert all(len(c) <= 16 for c in slow.calls) and sum(len(c) for c in slow.calls) == 60
    assert slow.finished[:2] == [1, 0]  # the second read ended first...
    assert answered == list(range(60))  # ...yet every batch was answered in the order it was sent
    assert slow.closed == 1
    alone = ServingEngine(store, cache_size=0)
    alone.register("fraud", engine.served("fraud").model, FEATURES)
    for r, p in zip(requests, [results[i] for i in range(60)], strict=True):
        assert p.entity_id == r["customer_id"] and p.score == alone.predict("fraud", r).score


async def test_close_answers_what_waits_for_a_read(store: FeatureStore) -> None:
    slow = SlowStore(store, seconds=0.02)
    engine = ServingEngine(slow, max_batch=2, max_inflight=1)
    engine.register("fraud", trained(1.0), FEATURES)
    tasks = [asyncio.create_task(engine.apredict("fraud", {"customer_id": f"c{i}"})) for i in range(7)]
    await asyncio.sleep(0)
    await engine.close()
    assert all(t.done() for t in tasks)
    assert [t.result().entity_id for t in tasks] == [f"c{i}" for i in range(7)]
    assert [len(c) for c in slow.calls] == [2, 2, 2, 1]
    assert (slow.readers, slow.closed) == (1, 1)
    inline = ServingEngine(slow, max_batch=2, async_reads=False)
    inline.register("fraud", trained(1.0), FEATURES)
    assert (await inline.apredict("fraud", {"customer_id": "c1"})).entity_id == "c1"
    assert len(slow.calls) == 5 and slow.readers == 1  # read inline: no reader was made


def _fraud_rows(rng: random.Random, n: int) -> list[dict]:
    return [
        {
            "order_total": rng.uniform(5, 500), "orders_1h": float(rng.randint(0, 3)),
            "orders_24h": float(rng.randint(0, 9)), "spend_24h": rng.uniform(0, 900),
            "mean_order_value_30d": rng.uniform(0, 300), "lifetime_spend": rng.uniform(0, 5000),
            "seconds_since_last_order": rng.choice([-1.0, rng.uniform(0, 1e6)]),
            "account_age_days": rng.uniform(1, 900), "country_mismatch": float(rng.random() < 0.1),
            "payment_method": rng.choice(["card", "paypal", "gift_card", "new_method"]),
        }
        for _ in range(n)
    ]


def test_flat_scorer_gives_river_s_exact_score_of_a_live_model() -> None:
    spec = PipelineSpec.from_yaml(resolve_spec_path("fraud_detection"))
    learner = OnlineLearner(spec.name, build_model(spec), task=spec.model.task)
    fast = scorer_for(learner)
    assert fast is not learner.score  # the pipeline was flattened
    rng = random.Random(3)
    for x in _fraud_rows(rng, 300):  # it keeps learning: the flat form reads the live state
        assert fast(x) == learner.score(x)
        learner.learn_one(x, x["order_total"] > 300 and x["country_mismatch"] == 1.0)
    assert len({fast(x) for x in _fraud_rows(rng, 20)}) > 1
    # a missing feature: River's own call raises, naming it
    with pytest.raises(KeyError, match="payment_method"):
        fast({k: v for k, v in _fraud_rows(rng, 1)[0].items() if k != "payment_method"})
    x = _fraud_rows(rng, 1)[0]
    learner.model = build_model(spec)  # a replaced model is scored, not the flattened one
    assert fast(x) == learner.score(x) == 0.5


def test_flat_scorer_regression_nesting_and_learning_during_predict() -> None:
    model = (
        compose.TransformerUnion(
            compose.Select("a") | preprocessing.StandardScaler(), compose.Select("a", "b")
        )
        | compose.Select("a", "b")
        | linear_model.LinearRegression()
    )
    rng = random.Random(5)
    for _ in range(100):
        a, b = rng.uniform(0, 10), rng.uniform(0, 10)
        model.learn_one({"a": a, "b": b}, 2 * a - b)
    fast = flat_scorer(model)
    assert fast is not None
    for _ in range(50):
        x = {"a": rng.uniform(0, 10), "b": rng.uniform(0, 10)}
        assert fast(x) == model.predict_one(x)
    before, twin = model.clone(include_attributes=True), model.clone(include_attributes=True)
    with compose.learn_during_predict():  # River's slow path learns the scaler: so does the scorer
        assert fast({"a": 30.0, "b": 2.0}) == twin.predict_one({"a": 30.0, "b": 2.0})
    x = {"a": 1.0, "b": 1.0}
    assert fast(x) == twin.predict_one(x) != before.predict_one(x)
    assert flat_scorer(linear_model.LogisticRegression()) is None


async def test_a_feature_neither_stored_nor_given_is_a_validation_error(store: FeatureStore) -> None:
    spec = PipelineSpec.from_yaml(resolve_spec_path("fraud_detection"))
    learner = OnlineLearner(spec.name, build_model(spec), task=spec.model.task)
    engine = ServingEngine(store, cache_size=0)
    engine.register("fraud", learner, list(spec.data.features))
    full = {"customer_id": "c1", "order_total": 50.0, "payment_method": "card", "country_mismatch": 0.0,
            "account_age_days": 30.0}
    assert 0.0 <= (await engine.apredict("fraud", full)).score <= 1.0
    missing = {k: v for k, v in full.items() if k != "payment_method"}
    with pytest.raises(ValidationError, match="needs the feature 'payment_method'"):
        await engine.apredict("fraud", missing)
    # in a batch, only the request that lacks it fails
    results = await asyncio.gather(engine.apredict("fraud", full), engine.apredict("fraud", missing),
                                   return_exceptions=True)
    assert isinstance(results[1], ValidationError) and not isinstance(results[0], BaseException)
