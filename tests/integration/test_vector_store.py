"""The vector stores' write: scores, vectors and the expiry asked with them, on Redis and in memory alike."""

from __future__ import annotations

import pytest

from hanzo.ml.learners.vectors import (
    InMemoryVectorStore,
    RedisVectorStore,
    ScoreWrite,
    VectorStore,
    VectorWrite,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, key_prefix: str) -> VectorStore:
    if request.param == "memory":
        return InMemoryVectorStore()
    return RedisVectorStore(request.getfixturevalue("redis_client"), key_prefix=key_prefix)


def _vector(subject: str, t: int, fresh: bool = True, score: float = 0.5) -> VectorWrite:
    return VectorWrite("m", subject, {"a": 1.0, "b": None}, score, t, ttl_s=3600, fresh=fresh)


def test_write_expires_first_then_stores_and_counts(store: VectorStore) -> None:
    assert store.write([], [_vector("o1", 1000), _vector("o2", 2000), _vector("o3", 3000)]) == {}
    score = ScoreWrite("m", "o4", {"score": 0.25, "version": None, "examples": 0}, ttl_s=60)
    # a late vector older than the cutoff, written in the same call: the expiry goes first, so it stays
    expired = store.write([score], [_vector("o4", 500)], expire_before={"m": 2500})
    assert expired == {"m": 2}
    assert [r is not None for r in store.read("m", ["o1", "o2", "o3", "o4"])] == [False, False, True, True]
    assert store.get_score("m", "o4") == {"score": 0.25, "version": None, "examples": 0}
    # the expiry alone, nothing to write: the late vector (event time 500) goes now
    assert store.write([], [], expire_before={"m": 2500}) == {"m": 1}
    assert store.read("m", ["o3", "o4"])[1] is None


def test_a_redelivered_vector_never_replaces_the_first_and_mixed_runs_keep_their_ttl(
    store: VectorStore,
) -> None:
    store.write([], [_vector("o1", 1000, score=0.1)])
    # fresh and re-delivered vectors interleaved: each keeps its own SET / SET NX
    store.write(
        [], [_vector("o1", 1000, fresh=False, score=0.9), _vector("o2", 1000), _vector("o3", 1000, False)]
    )
    got = store.read("m", ["o1", "o2", "o3"])
    assert [r["score"] if r else None for r in got] == [0.1, 0.5, 0.5]
    # only fresh vectors wait for a label: o3 (re-delivered, written where none was) is not expired
    assert store.write([], [], expire_before={"m": 5000}) == {"m": 2}
    assert [r is not None for r in store.read("m", ["o1", "o2", "o3"])] == [False, False, True]
