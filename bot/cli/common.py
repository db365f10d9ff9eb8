"""What the commands share: their Settings, the `--city` option and the shared Redis.

The command modules import from here, never from `bot.cli` itself (which imports them):
no import cycle (tests/test_architecture.py).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from bot.settings import Settings, describe_error

CITY_HELP = "city profile (default: BOT_CITY or kumamoto)"


def load_settings() -> Settings:
    """The Settings `main()` was given, else the environment's. A bad variable: one line
    naming it on stderr, exit 2, no traceback."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        try:
            root.obj = Settings.from_env()
        except ValidationError as exc:
            click.echo(describe_error(exc), err=True)
            ctx.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    return root.obj


def pass_settings(command: Callable[..., int]) -> Callable[..., int]:
    """Hands the command its Settings as the first argument. They are loaded when the command
    runs, after the whole command line is parsed: `--help` and usage errors never depend on
    the environment."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> int:
        return command(load_settings(), *args, **kwargs)

    return run


def city_option(command: Callable[..., int]) -> Callable[..., int]:
    """`--city`, applied to the Settings the command gets (put it under @pass_settings)."""

    @click.option("--city", help=CITY_HELP)
    @functools.wraps(command)
    def run(settings: Settings, *args: Any, city: str | None = None, **kwargs: Any) -> int:
        return command(settings.with_(city=city) if city else settings, *args, **kwargs)

    return run


def on_shared_redis(command: Callable[..., int]) -> Callable[..., int]:
    """For commands that work on the Redis `serve` and the workers share (put it under
    @pass_settings): they get its handle as `handle` (closed afterwards); without REDIS_URL
    they exit 2 with a message."""

    @functools.wraps(command)
    def run(settings: Settings, *args: Any, **kwargs: Any) -> int:
        # redis_conn stays out of the commands that never need it (chat starts its own through the runtime)
        from bot.core.redis_conn import connect

        if settings.redis_url is None:
            click.echo("alerts and campaigns need a shared Redis: set REDIS_URL (the same one `serve` and the "
                       "workers use)", err=True)
            return 2
        handle = connect(settings.redis_url, settings.data_dir)
        try:
            return command(settings, *args, handle=handle, **kwargs)
        finally:
            handle.close()

    return run


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def reaches_line(settings: Settings, who: str) -> bool:
    """Whether `who` (the worker, the statistics fetch) has a way to LINE: a token, or a fake
    LINE API. Without one it says so in one line (rather than a traceback from api.line.me)."""
    if settings.line_channel_access_token or settings.line_api_base_url != Settings().line_api_base_url:
        return True
    click.echo(f"{who} through LINE: set LINE_CHANNEL_ACCESS_TOKEN, or LINE_API_BASE_URL to a fake "
               "LINE API (`python -m bot serve` in local mode prints the command to use)", err=True)
    return False
