"""The Flask application factory.

`create_app(settings)` wires the domain objects once (bot.runtime) and registers
one blueprint per surface. Nothing is global: tests build as many apps as they
like, each with its own settings, Redis and LINE API.

Local mode (no LINE credentials): the fake LINE API runs in-process under
/fake-line and the /dev/chat simulator is served, so staff can try content
without a LINE channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from bot.conversation.events import EventHandler
from bot.conversation.outbox import Outbox
from bot.line.api import LineApi
from bot.line.fake import FakeLine
from bot.line.signature import verify as verify_signature
from bot.runtime import Runtime, build
from bot.settings import Settings
from bot.staff.db import Database, open_database
from bot.staff.records import Context
from bot.web.security import configure_security, console_secret

log = logging.getLogger(__name__)
LOCAL_SECRET = "local-mode-channel-secret"
FAKE_LINE_PREFIX = "/fake-line"
MAX_WEBHOOK_BYTES = 1024 * 1024


@dataclass
class Services:
    settings: Settings
    runtime: Runtime
    line_api: LineApi
    outbox: Outbox
    events: EventHandler
    secrets: tuple[str, ...]
    database: Database
    fake_line: FakeLine | None = None

    def staff_context(self) -> Context:
        """What the staff domain functions (bot.staff) work in, for this app's city."""
        return Context(self.database, self.runtime.redis.client, self.runtime.redis.url,
                       self.runtime.catalog.city(self.settings.city), self.settings)

    def verify(self, body: bytes, signature: str) -> bool:
        """LINE's signature over the exact body bytes, by the current or the previous secret."""
        return verify_signature(body, signature, self.secrets)

    def close(self) -> None:
        self.outbox.close()
        self.line_api.close()
        self.runtime.close()
        self.database.close()


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               synchronous_sends: bool = False) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_WEBHOOK_BYTES
    # staff read Japanese titles in API answers, not \u escapes (app.json is Flask's default
    # provider, which has ensure_ascii: json_provider_class is not overridden)
    cast(DefaultJSONProvider, app.json).ensure_ascii = False

    fake_line = None
    if settings.local_mode:
        fake_line = FakeLine()
        secret = settings.line_channel_secret or LOCAL_SECRET
        if settings.line_api_base_url == Settings().line_api_base_url:
            settings = settings.with_(line_api_base_url=f"http://{settings.host}:{settings.port}{FAKE_LINE_PREFIX}")
        settings = settings.with_(line_channel_secret=secret)
    secrets = tuple(s.get_secret_value() for s in (settings.line_channel_secret, settings.line_channel_secret_previous)
                    if s)

    key = console_secret(settings)  # before anything starts: a missing secret stops here
    runtime = runtime or build(settings)
    line_api = LineApi(settings)
    outbox = Outbox(line_api, settings.send_threads, synchronous=synchronous_sends)
    events = EventHandler(runtime.dialogue(settings.city), runtime.store, runtime.redis.client, outbox)
    services = Services(settings, runtime, line_api, outbox, events, secrets, open_database(settings), fake_line)
    app.extensions["bot"] = services

    from bot.web.console import bp as console_bp
    from bot.web.health import bp as health_bp
    from bot.web.links import bp as links_bp
    from bot.web.staff_api import bp as staff_api_bp
    from bot.web.webhook import bp as webhook_bp

    app.register_blueprint(webhook_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(staff_api_bp)
    app.register_blueprint(links_bp)
    app.register_blueprint(console_bp)
    csrf = configure_security(app, settings, key, runtime.redis.url)
    for surface in (webhook_bp, health_bp, staff_api_bp, links_bp):
        csrf.exempt(surface)  # signed by LINE, bearer tokens, or read-only: no browser session
    if settings.local_mode:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        from bot.line.fake import create_fake_line_app
        from bot.web.simulator import bp as simulator_bp

        app.register_blueprint(simulator_bp)
        csrf.exempt(simulator_bp)
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, {FAKE_LINE_PREFIX: create_fake_line_app(fake_line)})
    return app
