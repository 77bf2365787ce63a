"""Security settings: validation, client arguments for Redis / aiokafka / Faust, and secrets never shown."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pydantic
import pytest
import redis
import redis.asyncio

from hanzo.ml.config.errors import ConfigError
from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.security import (
    SecuritySettings,
    faust_broker_kwargs,
    kafka_client_kwargs,
    make_async_redis,
    make_redis,
    redis_kwargs,
    security_from,
)

SECRET = "hunter2-Sup3r-s3cret"  # noqa: S105 - a test value that must never show anywhere


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build settings from arguments; no HANZO_* variable of the machine leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("HANZO_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA certificate and a client certificate/key pair, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    files = {"ca": d / "ca.pem", "ca_key": d / "ca.key", "cert": d / "client.pem", "key": d / "client.key"}
    for cert, key, cn in (("ca", "ca_key", "test-ca"), ("cert", "key", "client")):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                f"/CN={cn}",
                "-keyout",
                str(files[key]),
                "-out",
                str(files[cert]),
            ],
            check=True,
            capture_output=True,
        )
    return files


def _sasl(**kw: object) -> SecuritySettings:
    base: dict[str, object] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "svc",
        "kafka_sasl_password": SECRET,
    }
    return SecuritySettings(**{**base, **kw})  # type: ignore[arg-type]


# -- validation ----------------------------------------------------------------------------------------------


def test_defaults_are_plaintext_and_add_nothing() -> None:
    sec = SecuritySettings()
    assert kafka_client_kwargs(sec) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_kwargs(sec) == {}
    assert redis_kwargs("redis://127.0.0.1:6379/0", sec) == ("redis://127.0.0.1:6379/0", {})


def test_sasl_plaintext_is_refused_without_explicit_opt_in() -> None:
    with pytest.raises(ConfigError) as info:
        _sasl(kafka_security_protocol="SASL_PLAINTEXT")
    text = str(info.value)
    assert "unencrypted" in text and "SASL_SSL" in text and "HANZO_KAFKA_ALLOW_SASL_PLAINTEXT=1" in text
    assert SECRET not in text and SECRET not in repr(info.value)

    sec = _sasl(kafka_security_protocol="SASL_PLAINTEXT", kafka_allow_sasl_plaintext=True)
    kw = kafka_client_kwargs(sec)
    assert kw == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": SECRET,
    }
    creds = faust_broker_kwargs(sec)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.ssl_context is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "svc"},
            "needs HANZO_KAFKA_SASL_USERNAME",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SECRET},
            "needs HANZO_KAFKA_SASL_USERNAME",
        ),
        (
            {"kafka_sasl_username": "svc", "kafka_sasl_password": SECRET},
            "PROTOCOL=PLAINTEXT does not use them",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_sasl_username": "svc"}, "PROTOCOL=SSL does not use them"),
        ({"kafka_ssl_ca_file": "/x/ca.pem"}, "HANZO_KAFKA_SSL_CA_FILE set but .*PLAINTEXT does not use TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_key_file": "/k"},
            "KEY_FILE is set without .*CERT_FILE",
        ),
        ({"redis_tls": True, "redis_tls_key_file": "/k"}, "HANZO_REDIS_TLS_KEY_FILE is set without"),
    ],
)
def test_inconsistent_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        SecuritySettings(**kwargs)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


def test_choices_are_closed_and_errors_hide_the_input() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        _sasl(kafka_sasl_mechanism="GSSAPI")
    assert "kafka_sasl_mechanism" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    with pytest.raises(pydantic.ValidationError, match="kafka_security_protocol"):
        SecuritySettings(kafka_security_protocol="TLS")  # type: ignore[arg-type]


def test_secrets_never_show_in_repr_str_or_dump() -> None:
    sec = _sasl(redis_username="app", redis_password=SECRET)
    for text in (repr(sec), str(sec), sec.model_dump_json(), repr(sec.model_dump())):
        assert SECRET not in text
    assert sec.kafka_sasl_password is not None and sec.kafka_sasl_password.get_secret_value() == SECRET
    creds = faust_broker_kwargs(sec)["broker_credentials"]
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    client = make_redis("redis://127.0.0.1:6379/0", sec)
    try:
        assert SECRET not in repr(client) and SECRET not in repr(client.connection_pool)
    finally:
        client.close()


def test_read_from_environment_beside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HANZO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("HANZO_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("HANZO_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("HANZO_REDIS_PASSWORD", "from-env")
    monkeypatch.setenv("HANZO_REDIS_TLS", "1")
    monkeypatch.setenv("HANZO_TOPIC_ORDERS", "shop-orders")  # a Settings field: ignored here
    sec = SecuritySettings()
    assert (sec.kafka_security_protocol, sec.kafka_sasl_mechanism, sec.redis_tls) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        True,
    )
    settings = Settings()  # the same environment still builds the main settings
    assert settings.topic_orders == "shop-orders"
    assert security_from(settings).redis_password == settings.redis_password
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        sec.redis_tls = False  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        SecuritySettings(redis_tls="perhaps")  # type: ignore[arg-type]


def test_security_from_prefers_the_given_object() -> None:
    settings = Settings(redis_password=SECRET)
    sec = security_from(settings)
    assert sec.redis_password is not None and sec.redis_password.get_secret_value() == SECRET


# -- Kafka ---------------------------------------------------------------------------------------------------


def test_kafka_ssl_context_loads_ca_and_client_cert(pki: dict[str, Path]) -> None:
    sec = SecuritySettings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=pki["ca"],
        kafka_ssl_cert_file=pki["cert"],
        kafka_ssl_key_file=pki["key"],
    )
    kw = kafka_client_kwargs(sec)
    assert kw["security_protocol"] == "SSL" and "sasl_mechanism" not in kw
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    creds = faust_broker_kwargs(sec)["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol.value == "SSL"
    assert creds.context.get_ca_certs() == ctx.get_ca_certs()


def test_sasl_ssl_gives_both_context_and_credentials(pki: dict[str, Path]) -> None:
    sec = _sasl(kafka_ssl_ca_file=pki["ca"])
    kw = kafka_client_kwargs(sec)
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("svc", SECRET)
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    creds = faust_broker_kwargs(sec)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value, creds.username) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "svc",
    )
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    translated = credentials_to_aiokafka_auth(creds)  # what faust hands to aiokafka
    assert {k: translated[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username")} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
    }


def test_missing_or_bad_kafka_files_name_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=rf"HANZO_KAFKA_SSL_CA_FILE={missing}: no such file"):
        kafka_client_kwargs(SecuritySettings(kafka_security_protocol="SSL", kafka_ssl_ca_file=missing))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="could not be loaded"):
        faust_broker_kwargs(SecuritySettings(kafka_security_protocol="SSL", kafka_ssl_ca_file=junk))


# -- Redis ---------------------------------------------------------------------------------------------------


def test_redis_tls_configures_an_ssl_pool(pki: dict[str, Path]) -> None:
    sec = SecuritySettings(
        redis_username="app",
        redis_password=SECRET,
        redis_tls=True,
        redis_tls_ca_file=pki["ca"],
        redis_tls_cert_file=pki["cert"],
        redis_tls_key_file=pki["key"],
    )
    client = make_redis("redis://db.example:6380/2", sec, socket_timeout=1.5)
    try:
        pool = client.connection_pool
        assert pool.connection_class is redis.SSLConnection
        kw = pool.connection_kwargs
        assert (kw["host"], kw["port"], kw["db"], kw["socket_timeout"]) == ("db.example", 6380, 2, 1.5)
        assert (kw["username"], kw["password"]) == ("app", SECRET)
        assert kw["ssl_ca_certs"] == str(pki["ca"]) and kw["ssl_certfile"] == str(pki["cert"])
        assert kw["ssl_keyfile"] == str(pki["key"])
        assert kw["ssl_cert_reqs"] == "required" and kw["ssl_check_hostname"] is True
        conn = pool.make_connection()
        assert isinstance(conn, redis.SSLConnection)
        assert conn.cert_reqs == ssl.CERT_REQUIRED and conn.ca_certs == str(pki["ca"])
    finally:
        client.close()


async def test_async_redis_tls_without_verification(caplog: pytest.LogCaptureFixture) -> None:
    sec = SecuritySettings(redis_tls_verify=False)
    client = make_async_redis("rediss://127.0.0.1:6380/0", sec)  # rediss:// alone turns TLS on
    try:
        pool = client.connection_pool
        assert pool.connection_class is redis.asyncio.SSLConnection
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
        assert pool.connection_kwargs["ssl_check_hostname"] is False
    finally:
        await client.aclose()
    assert "verification is off" in caplog.text


def test_redis_without_tls_refuses_tls_files_and_keeps_plain_pool(pki: dict[str, Path]) -> None:
    with pytest.raises(
        ConfigError, match="HANZO_REDIS_TLS_CA_FILE set but the Redis connection does not use TLS"
    ):
        make_redis("redis://127.0.0.1:6379/0", SecuritySettings(redis_tls_ca_file=pki["ca"]))
    client = make_redis("redis://127.0.0.1:6379/0", SecuritySettings(redis_username="app"))
    try:
        assert client.connection_pool.connection_class is redis.Connection
        assert client.connection_pool.connection_kwargs["username"] == "app"
    finally:
        client.close()
    with pytest.raises(ConfigError, match="scheme 'http'"):
        make_redis("http://127.0.0.1:6379", SecuritySettings())
    with pytest.raises(ConfigError, match=r"HANZO_REDIS_TLS_CA_FILE=/nowhere/ca.pem: no such file"):
        make_redis(
            "redis://127.0.0.1:6379", SecuritySettings(redis_tls=True, redis_tls_ca_file="/nowhere/ca.pem")
        )


# -- every Kafka client of the project gets the security options (constructed, never started) -------------


def _kafka_security(client: object) -> tuple[str, str | None, str | None, bool]:
    """What an aiokafka client will connect with: protocol, SASL mechanism and user, whether TLS is set."""
    inner = getattr(client, "_client", None) or client.client  # type: ignore[attr-defined]
    return (
        inner._security_protocol,
        inner._sasl_mechanism,
        inner._sasl_plain_username,
        inner._ssl_context is not None,
    )


async def test_every_kafka_client_receives_the_security_options(pki: dict[str, Path]) -> None:
    from hanzo.ml.learners.vectors import InMemoryVectorStore
    from hanzo.ml.streams.batch_consumer import BatchConsumer, ConsumerOptions
    from hanzo.ml.streams.learner_service import LabelJoiner, LearnerService
    from hanzo.ml.streams.simulation.producer import make_producer
    from hanzo.ml.streams.topics import admin_client

    kw = kafka_client_kwargs(_sasl(kafka_ssl_ca_file=pki["ca"]))
    expected = ("SASL_SSL", "SCRAM-SHA-512", "svc", True)
    bootstrap = "127.0.0.1:9"  # never contacted: nothing is started

    async def nothing(records: object) -> None: ...

    batch = BatchConsumer(
        ConsumerOptions(bootstrap=bootstrap, group_id="g", topics=("orders",), client_kwargs=kw), nothing
    )
    learner = LearnerService(
        LabelJoiner([], None, vectors=InMemoryVectorStore()), bootstrap, "labels", None, client_kwargs=kw
    )
    clients = {
        "batch consumer": batch.make_consumer(),
        "label consumer": learner.make_consumer(),
        "topic admin": admin_client(bootstrap, client_kwargs=kw),
        "simulator producer": make_producer(bootstrap, kw),
    }
    for name, client in clients.items():
        assert _kafka_security(client) == expected, name
    assert clients["batch consumer"]._client._sasl_plain_password == SECRET
    plain = {
        "label consumer": LearnerService(LabelJoiner([], None), bootstrap, "labels", None).make_consumer(),
        "topic admin": admin_client(bootstrap),
        "simulator producer": make_producer(bootstrap),
    }
    for name, client in plain.items():
        protocol, _mechanism, user, tls = _kafka_security(client)
        assert (protocol, user, tls) == ("PLAINTEXT", None, False), name
    for client in [*clients.values(), *plain.values()]:
        await (client.close() if hasattr(client, "close") else client.stop())
