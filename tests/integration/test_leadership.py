"""The learner lease against a real Redis: take, renew, lose on expiry, release only by its holder."""

from __future__ import annotations

import time

import pytest

from hanzo.ml.streams.leadership import Lease, claim_worker_id

pytestmark = pytest.mark.integration


def test_one_holder_at_a_time(redis_client, key_prefix):
    a = Lease(redis_client, "host:0", key_prefix=key_prefix, ttl_ms=10_000)
    b = Lease(redis_client, "host:1", key_prefix=key_prefix, ttl_ms=10_000)
    assert a.acquire()
    assert not b.acquire()
    assert a.current_holder() == b.current_holder() == "host:0"
    assert redis_client.pttl(a.key) > 9_000
    # a worker restarted with its own id takes its lease back at once
    assert Lease(redis_client, "host:0", key_prefix=key_prefix).acquire()


def test_renew_extends_only_the_holders_lease(redis_client, key_prefix):
    a = Lease(redis_client, "host:0", key_prefix=key_prefix, ttl_ms=1_000)
    b = Lease(redis_client, "host:1", key_prefix=key_prefix, ttl_ms=10_000)
    assert a.acquire()
    redis_client.pexpire(a.key, 200)
    assert not b.renew()  # not its lease: the TTL is not touched
    assert redis_client.pttl(a.key) <= 200
    assert a.renew()
    assert redis_client.pttl(a.key) > 500
    assert a.current_holder() == "host:0"


def test_an_expired_lease_is_lost_and_taken(redis_client, key_prefix):
    a = Lease(redis_client, "host:0", key_prefix=key_prefix, ttl_ms=300)
    b = Lease(redis_client, "host:1", key_prefix=key_prefix, ttl_ms=10_000)
    assert a.acquire()
    time.sleep(0.5)
    assert a.current_holder() is None
    assert not a.renew()  # an expired lease is not renewed back into existence
    assert b.acquire()
    assert not a.renew()
    assert not a.acquire()
    assert b.current_holder() == "host:1"


def test_release_deletes_only_the_holders_lease(redis_client, key_prefix):
    a = Lease(redis_client, "host:0", key_prefix=key_prefix)
    b = Lease(redis_client, "host:1", key_prefix=key_prefix)
    assert a.acquire()
    assert not b.release()
    assert a.current_holder() == "host:0"
    assert a.release()
    assert a.current_holder() is None
    assert not a.release()
    assert b.acquire()


def test_worker_ids_are_unique_among_live_claims_and_reused_after(tmp_path):
    first = claim_worker_id(tmp_path, host="h")
    second = claim_worker_id(tmp_path, host="h")
    assert (first.value, second.value) == ("h:0", "h:1")
    first.close()  # as when the process dies: the slot is free again
    again = claim_worker_id(tmp_path, host="h")
    assert again.value == "h:0"
    for w in (second, again):
        w.close()
