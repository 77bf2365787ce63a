"""What every ``hanzo-ml`` command shares: the settings it runs with and the way it is invoked.

A command takes the :class:`~hanzo.ml.config.settings.Settings` as its first argument through
:func:`pass_settings`: read from ``HANZO_*`` the first time a command asks (so ``--help`` works with a
bad setting), or the object given to :func:`~hanzo.ml.streams.cli.run`. Logging is configured here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import click
from rich.console import Console

from hanzo.ml.config.settings import Settings
from hanzo.ml.streams.embedded import resolve_services

P = ParamSpec("P")
R = TypeVar("R")

#: Messages for people (errors, progress) go to stderr; results go to stdout.
err_console = Console(stderr=True)

NOISY_LOGGERS = ("aiokafka", "faust", "mode", "kafka")


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation: those given to ``run``, else read from ``HANZO_*`` once."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    try:
        settings = Settings()
    except Exception as exc:  # pydantic names the variable and the value
        err_console.print(f"[red]bad HANZO_* setting:[/red] {exc}")
        raise click.exceptions.Exit(2) from None
    verbose = bool(root.params.get("verbose"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, settings.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    root.obj = settings
    return settings


def pass_settings(f: Callable[Concatenate[Settings, P], R]) -> Callable[P, R]:
    """Call the command with the invocation's settings as its first argument.

    Examples
    --------
    >>> @click.command()
    ... @pass_settings
    ... def where(settings: Settings) -> int:
    ...     return print(settings.key_prefix) or 0
    >>> where.main([], standalone_mode=False, obj=Settings(key_prefix="shop1:"))
    shop1:
    0
    """

    def new_func(*args: P.args, **kwargs: P.kwargs) -> R:
        return f(settings_of(click.get_current_context()), *args, **kwargs)

    return functools.update_wrapper(new_func, f)


def kafka_bootstrap(settings: Settings) -> str:
    """``HANZO_KAFKA_BOOTSTRAP``, else the broker of the ``hanzo-ml up`` stack (or an error saying so)."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    return resolve_services(settings).kafka_bootstrap


def redis_url(settings: Settings, explicit: str | None = None) -> str:
    """``explicit``, else ``HANZO_REDIS_URL``, else the Redis of the ``hanzo-ml up`` stack."""
    if explicit:
        return explicit
    if settings.redis_url:
        return settings.redis_url
    return resolve_services(settings).redis_url
