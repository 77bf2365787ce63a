"""``hanzo-ml worker``: check the services, wire the runtime, run the Faust app until stopped."""

from __future__ import annotations

import gc
import logging
from typing import Any

from hanzo.ml.config.settings import Settings

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, pipelines: list[str]) -> int:
    """Run one worker in the foreground (SIGTERM or Ctrl-C stops it cleanly)."""
    import faust

    from hanzo.ml.streams.app import create_app, start_metrics_server
    from hanzo.ml.streams.embedded import check_kafka, check_redis, resolve_services
    from hanzo.ml.streams.runtime import build_runtime
    from hanzo.ml.streams.security import kafka_client_kwargs, security_from
    from hanzo.ml.streams.topics import ensure_topics

    services = resolve_services(settings)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client_kwargs = kafka_client_kwargs(security_from(settings))  # TLS / SASL reach every Kafka client
    check_kafka(services.kafka_bootstrap, client_kwargs=client_kwargs)
    check_redis(services.redis_url, password=password)
    runtime = build_runtime(settings, services.redis_url, pipelines)
    app, hub = create_app(runtime, services.kafka_bootstrap)
    topics = hub.topics_wanted()

    @app.task(on_leader=False)
    async def _topics() -> None:
        await ensure_topics(services.kafka_bootstrap, topics, client_kwargs=client_kwargs)

    # the topics task must run before the services task that create_app registered
    app._app_tasks.insert(0, app._app_tasks.pop())
    server = start_metrics_server(runtime)
    logger.info(
        "metrics on http://%s:%d/metrics, web on http://%s:%d",
        settings.metrics_host,
        settings.metrics_port,
        settings.web_host,
        settings.web_port,
    )
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # The ~170,000 objects of start-up (libraries, models, definitions) live as long as the process; frozen,
    # a full collection no longer walks them, so it stops being a 40-50 ms pause of the event loop.
    gc.freeze()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        _shutdown(server)
    return 0


def _shutdown(server: Any) -> None:
    stop = getattr(server, "shutdown", None)
    if callable(stop):
        stop()
