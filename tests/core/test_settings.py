"""Configuration: the environment variables, their defaults, secrets kept out of logs,
and a bad value stopping start-up with one line that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.settings import REPO_ROOT, Settings, describe_error

# variable -> (field, value set, value read)
VARIABLES = {
    "BOT_CITY": ("city", "minato", "minato"),
    "REDIS_URL": ("redis_url", "redis://10.0.0.5:6379/2", "redis://10.0.0.5:6379/2"),
    "BOT_DATA_DIR": ("data_dir", "/srv/bot/data", Path("/srv/bot/data")),
    "BOT_CONTENT_ROOT": ("content_root", "/srv/bot/content", Path("/srv/bot/content")),
    "BOT_MODEL_CACHE": ("model_cache_dir", "/srv/bot/cache", Path("/srv/bot/cache")),
    "BOT_STATE_TTL": ("state_ttl_seconds", "600", 600),
    "BOT_SENSITIVE_STATE_TTL": ("sensitive_state_ttl_seconds", "300", 300),
    "BOT_ID_SALT": ("id_salt", "pepper-1234", SecretStr("pepper-1234")),
    "BOT_LOG_LEVEL": ("log_level", "DEBUG", "DEBUG"),
    "LINE_CHANNEL_SECRET": ("line_channel_secret", "chan-secret-1", SecretStr("chan-secret-1")),
    "LINE_CHANNEL_SECRET_PREVIOUS": ("line_channel_secret_previous", "chan-secret-0", SecretStr("chan-secret-0")),
    "LINE_CHANNEL_ACCESS_TOKEN": ("line_channel_access_token", "access-token-1", SecretStr("access-token-1")),
    "LINE_API_BASE_URL": ("line_api_base_url", "http://127.0.0.1:9090/", "http://127.0.0.1:9090"),
    "LINE_TIMEOUT_SECONDS": ("line_timeout_seconds", "2.5", 2.5),
    "HOST": ("host", "0.0.0.0", "0.0.0.0"),
    "PORT": ("port", "8080", 8080),
    "BOT_PUBLIC_URL": ("public_url", "https://bot.example.jp", "https://bot.example.jp"),
    "BOT_SEND_THREADS": ("send_threads", "4", 4),
    "BOT_SECRET_KEY": ("secret_key", "console-key-0123456789-0123456789", SecretStr("console-key-0123456789-0123456789")),
    "DATABASE_URL": ("database_url", "postgresql://u:dbpass-1@h/db", SecretStr("postgresql://u:dbpass-1@h/db")),
    "BOT_SESSION_MINUTES": ("session_minutes", "45", 45),
    "ALERT_RATE_PER_SECOND": ("alert_rate_per_second", "120.5", 120.5),
    "ALERT_DAILY_CAP": ("alert_daily_cap", "5", 5),
    "ALERT_LEASE_MS": ("alert_lease_ms", "15000", 15000),
    "ALERT_SEND_CONCURRENCY": ("alert_send_concurrency", "16", 16),
}
SECRETS = ["pepper-1234", "chan-secret-1", "chan-secret-0", "access-token-1", "console-key-0123456789", "dbpass-1"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of the variables set, whatever the shell running the tests has."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for _, (field, _, _) in VARIABLES.items():
        monkeypatch.delenv(field, raising=False)
    return monkeypatch


def test_every_field_has_its_variable():
    assert {name: field.validation_alias for name, field in Settings.model_fields.items()} == {
        field: variable for variable, (field, _, _) in VARIABLES.items()}


def test_repr_and_str_hide_the_secrets(clean_env):
    direct = Settings(id_salt="pepper-1234", line_channel_secret="chan-secret-1",
                      line_channel_secret_previous="chan-secret-0", line_channel_access_token="access-token-1",
                      secret_key="console-key-0123456789-0123456789", database_url="postgresql://u:dbpass-1@h/db")
    for name, (_, value, _) in VARIABLES.items():
        clean_env.setenv(name, value)
    from_env = Settings.from_env()
    for settings in (direct, from_env):
        for text in (repr(settings), str(settings), f"{settings}", repr(settings.model_dump())):
            assert not [s for s in SECRETS if s in text], text
        assert settings.id_salt.get_secret_value() == "pepper-1234"
        assert settings.line_channel_access_token.get_secret_value() == "access-token-1"
        assert settings.secret_key.get_secret_value() == "console-key-0123456789-0123456789"
    assert "**********" in repr(direct)
    # the default salt is a secret too
    assert "local-development-salt" not in repr(Settings())


def test_environment_names_map_to_fields(clean_env):
    for name, (_, value, _) in VARIABLES.items():
        clean_env.setenv(name, value)
    settings = Settings.from_env()
    for name, (field, _, expected) in VARIABLES.items():
        assert getattr(settings, field) == expected, name
    assert not settings.local_mode


def test_only_the_variables_are_read(clean_env):
    clean_env.setenv("port", "1234")  # the field's name, not the variable's
    clean_env.setenv("city", "minato")
    clean_env.setenv("Port", "1234")
    settings = Settings.from_env()
    assert (settings.port, settings.city) == (8000, "kumamoto")


def test_defaults_without_variables(clean_env):
    settings = Settings.from_env()
    assert settings == Settings()
    assert (settings.city, settings.port, settings.host, settings.redis_url) == ("kumamoto", 8000, "127.0.0.1", None)
    assert settings.data_dir == REPO_ROOT / "var"
    assert settings.model_cache_dir == REPO_ROOT / "var" / "model-cache"
    assert settings.id_salt.get_secret_value() == "local-development-salt"
    assert (settings.alert_rate_per_second, settings.alert_daily_cap) == (150.0, 3)
    assert settings.local_mode


def test_an_empty_variable_means_unset(clean_env):
    for name in VARIABLES:
        clean_env.setenv(name, "")
    settings = Settings.from_env()
    # BOT_MODEL_CACHE= is the one exception (README): fit the matcher at every start
    assert settings.model_cache_dir is None
    assert settings.with_(model_cache_dir=Settings().model_cache_dir) == Settings()
    assert settings.local_mode


def test_direct_construction_ignores_the_environment(clean_env):
    for name, (_, value, _) in VARIABLES.items():
        clean_env.setenv(name, value)
    assert Settings() == Settings.model_construct()
    assert Settings(port=9000).city == "kumamoto"
    assert Settings(port=9000).with_(city="minato").port == 9000


def test_with_validates_and_the_object_is_frozen():
    settings = Settings(port=9000)
    changed = settings.with_(line_channel_secret="s", line_channel_access_token="t", port=9001)
    assert isinstance(changed.line_channel_secret, SecretStr)
    assert changed.line_channel_secret.get_secret_value() == "s"
    assert (changed.port, settings.port, changed.local_mode, settings.local_mode) == (9001, 9000, False, True)
    with pytest.raises(ValidationError):
        settings.with_(port=-1)
    with pytest.raises(ValidationError):
        settings.with_(no_such_field=1)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_a_bad_value_is_described_in_one_line(clean_env):
    clean_env.setenv("PORT", "abc")
    clean_env.setenv("ALERT_RATE_PER_SECOND", "-5")
    with pytest.raises(ValidationError) as caught:
        Settings.from_env()
    assert describe_error(caught.value) == (
        "PORT: must be an integer (got 'abc'); ALERT_RATE_PER_SECOND: must be greater than 0 (got '-5')")
    # by field name too, and never echoing a secret
    with pytest.raises(ValidationError) as caught:
        Settings(send_threads=0, secret_key=12345678)
    line = describe_error(caught.value)
    assert "BOT_SEND_THREADS: must be greater than or equal to 1 (got 0)" in line
    assert "BOT_SECRET_KEY: " in line and "12345678" not in line
    assert "\n" not in line


@pytest.mark.subprocess
@pytest.mark.parametrize("variable, value", [("PORT", "abc"), ("ALERT_RATE_PER_SECOND", "-5")])
def test_serve_refuses_a_bad_value_with_one_line(tmp_path, variable, value):
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(BOT_DATA_DIR=str(tmp_path), **{variable: value})
    proc = subprocess.run([sys.executable, "-m", "bot", "serve"], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{variable}: "), proc.stderr
    assert repr(value) in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.subprocess
def test_the_wsgi_entry_point_refuses_a_bad_value_with_one_line():
    """`gunicorn bot.wsgi:app` with PORT=abc once died with a traceback in gunicorn's log."""
    env = {**os.environ, "PORT": "abc"}
    result = subprocess.run([sys.executable, "-c", "import bot.wsgi"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip() == "PORT: must be an integer (got 'abc')"
