"""`serve` (the webhook app) and `fake-line` (the fake LINE Messaging API), both under gunicorn."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot.cli.common import pass_settings
from bot.content.loader import load_catalog
from bot.content.yamldoc import ContentError
from bot.settings import Settings


def run_gunicorn(load: Callable[[], Any], options: dict[str, Any], config_file: Path | None = None) -> None:
    """Serve the WSGI app `load()` returns under gunicorn: the settings of `config_file` (a
    gunicorn config, e.g. deploy/gunicorn.conf.py) if given, then `options` over them."""
    # gunicorn only for the two commands that serve
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # gunicorn's documented custom-application hook
        def load_config(self) -> None:
            namespace: dict[str, Any] = {}
            if config_file is not None:
                exec(compile(config_file.read_text(), str(config_file), "exec"), namespace)  # noqa: S102
            for key, value in {**namespace, **options}.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self):  # noqa: ANN202
            return load()

    Server().run()


@click.command(help="run the webhook (local mode without LINE credentials)")
@click.option("--host", help="listen address (default HOST or 127.0.0.1)")
@click.option("--port", type=click.IntRange(1, 65535), help="port (default PORT or 8000)")
@click.option("--dev", is_flag=True, help="werkzeug's development server instead of gunicorn")
@pass_settings
def serve(settings: Settings, host: str | None, port: int | None, dev: bool) -> int:
    return cmd_serve(settings.with_(host=host or settings.host, port=port or settings.port), dev)


def cmd_serve(settings: Settings, dev: bool = False) -> int:
    # the runtime and the web app bring the matcher (scikit-learn): loaded by this command only
    from bot.core.redis_conn import start_embedded
    from bot.runtime import build
    from bot.web.app import FAKE_LINE_PREFIX, create_app
    from bot.web.security import StartupError, console_secret

    logging.getLogger().setLevel(settings.log_level)
    try:
        console_secret(settings)
    except StartupError as exc:
        click.echo(str(exc), err=True)
        return 2
    try:
        catalog = load_catalog(settings.content_root)  # refuse to start on invalid content, before forking
    except ContentError as exc:
        click.echo(exc, err=True)
        return 1
    embedded = None
    if settings.redis_url is None:
        # One embedded Redis for all worker processes, started before they fork; or the
        # one another command already runs on this data folder, which is not ours to stop.
        embedded, url = start_embedded(settings.data_dir)
        settings = settings.with_(redis_url=url)
        if embedded is None:
            click.echo(f"Joined the embedded Redis another process started in {settings.data_dir}: it stops "
                       "when that process exits.")
    where = f"http://{settings.host}:{settings.port}"
    if settings.local_mode:
        click.echo(f"Local mode (no LINE credentials): open {where}/dev/chat to talk to the bot.")
    click.echo(f"Webhook: POST {where}/callback   Health: {where}/healthz")
    click.echo(f"Staff console: {where}/admin  (the first admin: python -m bot staff add NAME --role admin)")
    if settings.local_mode:
        # Alerts and campaigns reach the talk screen too: a worker delivers into this
        # process's fake LINE API.
        click.echo(f"Redis: {settings.redis_url}  (alert workers: REDIS_URL={settings.redis_url} "
                   f"LINE_API_BASE_URL={where}{FAKE_LINE_PREFIX} python -m bot worker)")
    else:
        click.echo(f"Redis: {settings.redis_url}  (alert workers: REDIS_URL={settings.redis_url} python -m bot worker)")
    try:
        if dev:
            app = create_app(settings, runtime=build(settings, catalog=catalog))
            app.run(settings.host, settings.port, threaded=True)
            return 0
        # deploy/gunicorn.conf.py reads HOST and PORT
        os.environ.setdefault("HOST", settings.host)
        os.environ.setdefault("PORT", str(settings.port))
        options: dict[str, Any] = {"bind": f"{settings.host}:{settings.port}"}
        if settings.local_mode:
            options["workers"] = 1  # the fake LINE API lives in this one process
        # preload_app (deploy/gunicorn.conf.py): the app is built once, in the master
        run_gunicorn(lambda: create_app(settings, runtime=build(settings, catalog=catalog)), options,
                     settings.content_root / "deploy" / "gunicorn.conf.py")
        return 0
    finally:
        if embedded is not None:
            embedded.shutdown()


@click.command("fake-line", help="run the fake LINE Messaging API (tests, benchmarks, local work)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True)
@click.option("--access-token", help="require this bearer token")
@pass_settings
def fake_line(settings: Settings, host: str, port: int, access_token: str | None) -> int:
    del settings  # checked like every command's (a bad variable stops it), not used
    return cmd_fake_line(host, port, access_token)


def cmd_fake_line(host: str, port: int, access_token: str | None) -> int:
    from bot.line.fake import FakeLine, create_fake_line_app  # the LINE SDK: loaded by this command only

    app = create_fake_line_app(FakeLine(access_token=access_token))
    click.echo(f"Fake LINE API on http://{host}:{port} (set LINE_API_BASE_URL to this)")
    # One process (the fake's state lives in it), threads for concurrent senders,
    # keep-alive like LINE's servers; werkzeug's development server cost twice
    # the CPU per request, which the benchmarks share with the code they measure.
    run_gunicorn(lambda: app, {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread",
                               "threads": 64, "keepalive": 30, "loglevel": "warning"})
    return 0
