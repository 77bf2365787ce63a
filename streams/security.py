"""Security options for Redis and Kafka clients, and the factories that apply them.

:class:`SecuritySettings` holds the Redis ACL user, password and TLS files and the Kafka security protocol,
SASL mechanism and credentials and TLS files (env ``HANZO_*``). The factories turn them into clients or
client arguments: :func:`make_redis` / :func:`make_async_redis` (plus :func:`connect_redis` /
:func:`connect_async_redis`, which also check that the server accepts us), :func:`kafka_client_kwargs` for
aiokafka and :func:`faust_broker_kwargs` for ``faust.App``.

Passwords are ``SecretStr``: they never show in a ``repr``, a log line or an error message. SASL over an
unencrypted connection (``SASL_PLAINTEXT``) sends the password in clear text and is refused unless
``kafka_allow_sasl_plaintext`` says it is wanted.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hanzo.ml.config.errors import ConfigError, ServiceUnavailableError

logger = logging.getLogger(__name__)

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_KAFKA_FILES = ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
_REDIS_FILES = ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")


class SecuritySettings(BaseSettings):
    """Credentials and TLS options of the Redis and Kafka clients (env ``HANZO_*``).

    It reads the same environment as ``config.settings.Settings`` and ignores the variables it does not
    know, so both can be built at the entry point. Validation refuses combinations that would silently
    drop a setting or send a password in clear text; it raises :class:`config.errors.ConfigError` naming
    the variable and saying what to set.

    Examples
    --------
    >>> sec = SecuritySettings(
    ...     kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
    ...     kafka_sasl_username="svc", kafka_sasl_password="s3cret",
    ... )
    >>> sec.kafka_sasl_password
    SecretStr('**********')
    >>> "s3cret" in repr(sec)
    False
    >>> SecuritySettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="svc",
    ...                  kafka_sasl_password="s3cret")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hanzo.ml.config.errors.ConfigError: HANZO_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the SASL ...
    """

    model_config = SettingsConfigDict(
        env_prefix="HANZO_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # Redis.
    redis_username: str | None = Field(None, description="Redis ACL user (None: the default user)")
    redis_password: SecretStr | None = Field(None, description="password of the Redis (ACL) user")
    redis_tls: bool = Field(False, description="connect with TLS (a rediss:// URL does too)")
    redis_tls_ca_file: Path | None = Field(None, description="CA bundle (PEM) that signed the server cert")
    redis_tls_cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    redis_tls_key_file: Path | None = Field(None, description="private key (PEM) of the client certificate")
    redis_tls_verify: bool = Field(True, description="verify the server certificate and host name")

    # Kafka.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = Field(None, description="CA bundle (PEM); None: the system CAs")
    kafka_ssl_cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_key_file: Path | None = Field(None, description="private key (PEM) of the client certificate")
    kafka_allow_sasl_plaintext: bool = Field(
        False, description="allow SASL_PLAINTEXT (password in clear text on the wire)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySettings:
        proto = self.kafka_security_protocol
        sasl = proto.startswith("SASL_")
        if proto == "SASL_PLAINTEXT" and not self.kafka_allow_sasl_plaintext:
            msg = (
                "HANZO_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the SASL password "
                f"({self.kafka_sasl_mechanism}) and all data unencrypted, readable by anyone on the network; "
                "use SASL_SSL, or set HANZO_KAFKA_ALLOW_SASL_PLAINTEXT=1 to accept that explicitly "
                "(e.g. a private test network)"
            )
            raise ConfigError(msg)
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            msg = (
                f"HANZO_KAFKA_SECURITY_PROTOCOL={proto} needs HANZO_KAFKA_SASL_USERNAME and "
                "HANZO_KAFKA_SASL_PASSWORD; set both"
            )
            raise ConfigError(msg)
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password is not None):
            msg = (
                f"Kafka SASL credentials are set but HANZO_KAFKA_SECURITY_PROTOCOL={proto} does not use "
                "them; set HANZO_KAFKA_SECURITY_PROTOCOL=SASL_SSL or unset the SASL username and password"
            )
            raise ConfigError(msg)
        if proto in ("PLAINTEXT", "SASL_PLAINTEXT"):
            given = [f"HANZO_{f.upper()}" for f in _KAFKA_FILES if getattr(self, f) is not None]
            if given:
                msg = (
                    f"{', '.join(given)} set but HANZO_KAFKA_SECURITY_PROTOCOL={proto} does not use TLS; "
                    "set it to SSL or SASL_SSL, or unset the files"
                )
                raise ConfigError(msg)
        pairs = (("kafka_ssl_key_file", "kafka_ssl_cert_file"), ("redis_tls_key_file", "redis_tls_cert_file"))
        for key, cert in pairs:
            if getattr(self, key) is not None and getattr(self, cert) is None:
                msg = f"HANZO_{key.upper()} is set without HANZO_{cert.upper()}; set the client certificate"
                raise ConfigError(msg)
        return self


def security_from(settings: object) -> SecuritySettings:
    """Build :class:`SecuritySettings` from an object carrying some of its fields (e.g. ``Settings``).

    Fields the object has are taken from it; the others come from the ``HANZO_*`` environment (call this at
    the entry point only). Once ``Settings`` holds every security field, the environment is not consulted
    for them.
    """
    given = {f: getattr(settings, f) for f in SecuritySettings.model_fields if hasattr(settings, f)}
    return SecuritySettings(**given)


def _check_files(sec: SecuritySettings, fields: tuple[str, ...]) -> None:
    for field in fields:
        path = getattr(sec, field)
        if path is not None and not Path(path).is_file():
            msg = f"HANZO_{field.upper()}={path}: no such file; point it at a PEM file"
            raise ConfigError(msg)


# -- Redis -------------------------------------------------------------------------------------------------


def redis_kwargs(url: str, sec: SecuritySettings) -> tuple[str, dict[str, Any]]:
    """Return ``(url, kwargs)`` for ``Redis.from_url`` with the user, password and TLS of ``sec``.

    A ``redis://`` URL becomes ``rediss://`` when ``redis_tls`` is set; a ``rediss://`` URL uses TLS
    whatever ``redis_tls`` says. A username or password in ``sec`` overrides one in the URL.

    Examples
    --------
    >>> url, kw = redis_kwargs("redis://127.0.0.1:6379/0", SecuritySettings(redis_tls=True))
    >>> url, kw["ssl_cert_reqs"], kw["ssl_check_hostname"]
    ('rediss://127.0.0.1:6379/0', 'required', True)
    >>> redis_kwargs("redis://db:6379/0", SecuritySettings(redis_username="app"))
    ('redis://db:6379/0', {'username': 'app'})
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        msg = f"Redis URL scheme {parts.scheme!r} is not redis://, rediss:// or unix://; fix HANZO_REDIS_URL"
        raise ConfigError(msg)
    tls = parts.scheme == "rediss" or (sec.redis_tls and parts.scheme == "redis")
    kwargs: dict[str, Any] = {}
    if sec.redis_username:
        kwargs["username"] = sec.redis_username
    if sec.redis_password is not None:
        kwargs["password"] = sec.redis_password.get_secret_value()
    if not tls:
        given = [f"HANZO_{f.upper()}" for f in _REDIS_FILES if getattr(sec, f) is not None]
        if given:
            msg = (
                f"{', '.join(given)} set but the Redis connection does not use TLS; "
                "set HANZO_REDIS_TLS=1 (or use a rediss:// URL), or unset the files"
            )
            raise ConfigError(msg)
        return url, kwargs
    _check_files(sec, _REDIS_FILES)
    if parts.scheme == "redis":
        url = urlunsplit(parts._replace(scheme="rediss"))
    if not sec.redis_tls_verify:
        logger.warning("Redis TLS certificate verification is off (HANZO_REDIS_TLS_VERIFY=0)")
    kwargs.update(
        ssl_cert_reqs="required" if sec.redis_tls_verify else "none",
        ssl_check_hostname=sec.redis_tls_verify,
        ssl_ca_certs=_str(sec.redis_tls_ca_file),
        ssl_certfile=_str(sec.redis_tls_cert_file),
        ssl_keyfile=_str(sec.redis_tls_key_file),
    )
    return url, kwargs


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def make_redis(url: str, sec: SecuritySettings, **kw: Any) -> redis.Redis:
    """A sync ``redis.Redis`` for ``url`` with the credentials and TLS of ``sec``; it does not connect yet.

    ``kw`` goes to ``Redis.from_url`` (e.g. ``socket_timeout``) and wins over ``sec``.

    Examples
    --------
    >>> client = make_redis("redis://127.0.0.1:6379/0", SecuritySettings(redis_tls=True))
    >>> client.connection_pool.connection_class.__name__
    'SSLConnection'
    >>> client.close()
    """
    url, kwargs = redis_kwargs(url, sec)
    return redis.Redis.from_url(url, **{**kwargs, **kw})


def make_async_redis(url: str, sec: SecuritySettings, **kw: Any) -> redis.asyncio.Redis:
    """Like :func:`make_redis`, for ``redis.asyncio``."""
    url, kwargs = redis_kwargs(url, sec)
    return redis.asyncio.Redis.from_url(url, **{**kwargs, **kw})


def redact_url(url: str) -> str:
    """Drop the password from a URL (for display and for the state file).

    Examples
    --------
    >>> redact_url("redis://user:secret@db:6379/0"), redact_url("redis://:secret@db/1")
    ('redis://user@db:6379/0', 'redis://db/1')
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def _redis_error(url: str, sec: SecuritySettings, exc: BaseException) -> ServiceUnavailableError:
    shown = redact_url(url)
    anonymous = sec.redis_password is None and urlsplit(url).password is None
    if isinstance(exc, redis.AuthenticationError) and anonymous:
        msg = (
            f"Redis at {shown} requires authentication ({exc}); "
            "set HANZO_REDIS_PASSWORD (and HANZO_REDIS_USERNAME for an ACL user)"
        )
    elif isinstance(exc, redis.AuthenticationError):
        msg = (
            f"Redis at {shown} refused our credentials ({exc}); "
            "fix HANZO_REDIS_USERNAME / HANZO_REDIS_PASSWORD"
        )
    else:
        msg = (
            f"no Redis answered at {shown} ({type(exc).__name__}: {exc}); "
            "start one with `hanzo-ml up` or fix HANZO_REDIS_URL and the HANZO_REDIS_TLS* settings"
        )
    return ServiceUnavailableError(msg)


def connect_redis(url: str, sec: SecuritySettings, timeout: float = 3.0, **kw: Any) -> redis.Redis:
    """:func:`make_redis`, then PING: a refused password or an absent server raises at once.

    Raises
    ------
    ServiceUnavailableError
        Naming the address (never the password) and what to fix.
    """
    kw.setdefault("socket_connect_timeout", timeout)
    kw.setdefault("socket_timeout", timeout)
    used, kwargs = redis_kwargs(url, sec)  # rediss:// when TLS is on
    client = redis.Redis.from_url(used, **{**kwargs, **kw})
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        raise _redis_error(used, sec, exc) from None
    return client


async def connect_async_redis(
    url: str, sec: SecuritySettings, timeout: float = 3.0, **kw: Any
) -> redis.asyncio.Redis:
    """:func:`make_async_redis`, then PING (see :func:`connect_redis`)."""
    kw.setdefault("socket_connect_timeout", timeout)
    kw.setdefault("socket_timeout", timeout)
    used, kwargs = redis_kwargs(url, sec)
    client = redis.asyncio.Redis.from_url(used, **{**kwargs, **kw})
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        raise _redis_error(used, sec, exc) from None
    return client


# -- Kafka -------------------------------------------------------------------------------------------------


def kafka_ssl_context(sec: SecuritySettings) -> ssl.SSLContext | None:
    """The client TLS context of ``sec`` (None for PLAINTEXT and SASL_PLAINTEXT)."""
    if sec.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    _check_files(sec, _KAFKA_FILES)
    try:
        return create_ssl_context(
            cafile=sec.kafka_ssl_ca_file,
            certfile=sec.kafka_ssl_cert_file,
            keyfile=sec.kafka_ssl_key_file,
        )
    except (ssl.SSLError, OSError) as exc:
        msg = (
            f"Kafka TLS files (ca={sec.kafka_ssl_ca_file}, cert={sec.kafka_ssl_cert_file}, "
            f"key={sec.kafka_ssl_key_file}) could not be loaded ({exc}); point HANZO_KAFKA_SSL_* at PEM files"
        )
        raise ConfigError(msg) from None


def kafka_client_kwargs(sec: SecuritySettings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``.

    Examples
    --------
    >>> kafka_client_kwargs(SecuritySettings())
    {'security_protocol': 'PLAINTEXT'}
    >>> kw = kafka_client_kwargs(SecuritySettings(
    ...     kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
    ...     kafka_sasl_username="svc", kafka_sasl_password="pw"))
    >>> kw["security_protocol"], kw["sasl_mechanism"], type(kw["ssl_context"]).__name__
    ('SASL_SSL', 'SCRAM-SHA-256', 'SSLContext')
    """
    kwargs: dict[str, Any] = {"security_protocol": sec.kafka_security_protocol}
    context = kafka_ssl_context(sec)
    if context is not None:
        kwargs["ssl_context"] = context
    if sec.kafka_security_protocol.startswith("SASL_"):
        assert sec.kafka_sasl_password is not None  # noqa: S101 - guaranteed by validation
        kwargs.update(
            sasl_mechanism=sec.kafka_sasl_mechanism,
            sasl_plain_username=sec.kafka_sasl_username,
            sasl_plain_password=sec.kafka_sasl_password.get_secret_value(),
        )
    return kwargs


def faust_broker_kwargs(sec: SecuritySettings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App``: ``broker_credentials`` (empty for PLAINTEXT).

    Examples
    --------
    >>> faust_broker_kwargs(SecuritySettings())
    {}
    >>> faust_broker_kwargs(SecuritySettings(kafka_security_protocol="SSL"))  # doctest: +ELLIPSIS
    {'broker_credentials': <SSLCredentials: context=<ssl.SSLContext object at ...>>}
    """
    import faust

    proto = sec.kafka_security_protocol
    if proto == "PLAINTEXT":
        return {}
    context = kafka_ssl_context(sec)
    if proto == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    assert sec.kafka_sasl_password is not None  # noqa: S101 - guaranteed by validation
    credentials = faust.SASLCredentials(
        username=sec.kafka_sasl_username,
        password=sec.kafka_sasl_password.get_secret_value(),
        ssl_context=context,  # None for SASL_PLAINTEXT, which faust then uses
        mechanism=sec.kafka_sasl_mechanism,
    )
    return {"broker_credentials": credentials}
