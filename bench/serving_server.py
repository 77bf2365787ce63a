"""A minimal serving worker: a Faust app whose web server answers the serving views.

It follows models in a registry (``--model``, ``--alias``) over a Redis feature store. ``bench.serving``
runs it as the HTTP server under test, and so does ``tests/integration/test_serving_http.py``::

    python -m bench.serving_server --bootstrap 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379/0 \
        --registry-dir .hanzo/registry --model fraud_detection --web-port 6070
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import faust
import redis
import redis.asyncio

from hanzo.ml.features import FeatureStore, RedisOnlineStore
from hanzo.ml.learners.serving import ServingEngine
from hanzo.ml.registry import RegistryReader
from hanzo.ml.streams.app import EngineService
from hanzo.ml.streams.web import register_views

logger = logging.getLogger(__name__)


def build_app(args: argparse.Namespace) -> faust.App:
    """The Faust app with the serving views over the engine."""
    client = redis.Redis.from_url(args.redis_url, socket_timeout=5, socket_connect_timeout=3)
    store = FeatureStore(backend=RedisOnlineStore(
        client, key_prefix=args.key_prefix,
        async_factory=lambda: redis.asyncio.Redis.from_url(args.redis_url, socket_timeout=5),
    ))
    engine = ServingEngine(
        store,
        redis_client=client,
        key_prefix=args.key_prefix,
        registry=RegistryReader(Path(args.registry_dir)),
        max_batch=args.max_batch,
        max_inflight=args.max_inflight,
        async_reads=not args.sync_reads,
    )
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=2.0,
        web_host="127.0.0.1",
        web_port=args.web_port,
        web_bind="127.0.0.1",
        store="memory://",
        datadir=args.datadir or tempfile.mkdtemp(prefix="hanzo-serving-"),
    )
    register_views(app, engine, health=lambda: {"status": "ok", "models": len(engine.models())})

    @app.task
    async def follow_models() -> None:
        for name in args.model:
            engine.follow(name, alias=args.alias, every_s=args.every_s)
        await app.add_runtime_dependency(EngineService(engine))  # closed when the worker stops

    return app


def main(argv: list[str] | None = None) -> int:
    """Run the serving worker until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--key-prefix", default="")
    p.add_argument("--registry-dir", required=True)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--alias", default="production")
    p.add_argument("--every-s", type=float, default=0.5)
    p.add_argument("--web-port", type=int, required=True)
    p.add_argument("--app-id", default="hanzo-serving")
    p.add_argument("--datadir", default=None)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-inflight", type=int, default=2)
    p.add_argument("--sync-reads", action="store_true", help="read the store inline (no redis.asyncio)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = build_app(args)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
