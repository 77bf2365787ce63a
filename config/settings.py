"""Typed settings, read once from the environment (prefix ``HANZO_``) at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of hanzo-ml, from ``HANZO_*`` environment variables.

    Components receive typed values from here; none of them reads ``os.environ``.

    Examples
    --------
    >>> s = Settings(kafka_port=19092)
    >>> s.kafka_port, s.topic_orders
    (19092, 'orders')
    """

    model_config = SettingsConfigDict(env_prefix="HANZO_", frozen=True, extra="forbid")

    # Services. When these are set, existing services are used and nothing is started.
    kafka_bootstrap: str | None = Field(None, description="host:port of an existing Kafka broker")
    redis_url: str | None = Field(None, description="redis:// URL of an existing Redis")
    redis_password: SecretStr | None = None
    redis_username: str | None = Field(None, description="Redis ACL user")
    redis_tls: bool = False
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    redis_tls_verify: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_allow_sasl_plaintext: bool = Field(False, description="explicit opt-in to SASL without TLS")

    # The embedded stack (`hanzo-ml up`).
    state_dir: Path = Path(".hanzo")
    kafka_port: int = 9092
    redis_port: int = 6379
    pick_free_port: bool = Field(False, description="take a free port when the configured one is taken")

    # Topics.
    topic_orders: str = "orders"
    topic_events: str = "events"
    topic_labels: str = "labels"
    topic_scores: str = "scores"
    topic_dead_letters: str = "dead-letters"
    partitions: int = 4

    # Worker.
    app_id: str = "hanzo-ml"
    role: Literal["all", "score", "learn"] = Field(
        "all",
        description="all: score, and learn while holding the learner lease; score: never learn, follow the "
        "registry; learn: consume no orders, learn while holding the lease (one per group of scorers)",
    )
    consumer_group: str = "hanzo-ml-worker"
    session_timeout_s: float = 6.0
    batch_max: int = 2000
    batch_timeout_ms: int = 50
    align_wait_ms: int = Field(
        50,
        ge=0,
        description="most time a batch waits for a partition that is behind but has nothing fetched before "
        "newer records of the other partitions go out (records go out oldest first across partitions)",
    )
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    snapshot_every: int = 1000
    feature_allowed_lateness_s: float | None = Field(
        None,
        description="feature updates older than this behind an entity's newest event are late; "
        "default: the longest feature window",
    )
    label_horizon_s: int = 90 * 86400
    key_prefix: str = Field("", description="prefix of every Redis key (tests give each run its own)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Registry.
    registry_dir: Path | None = None
    registry_hmac_key: SecretStr | None = None

    @property
    def registry_path(self) -> Path:
        """Folder of the filesystem registry (``<state_dir>/registry`` unless set)."""
        return self.registry_dir or self.state_dir / "registry"
