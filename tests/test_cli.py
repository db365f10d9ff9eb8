"""The command line as a user runs it: real subprocesses, real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.settings import REPO_ROOT


def run(args, stdin="", env_extra=None, timeout=60):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=timeout)


@pytest.fixture
def env(redis_url, redis_client, tmp_path):
    return {"REDIS_URL": redis_url, "BOT_DATA_DIR": str(tmp_path)}


def test_chat_json_contract(env):
    lines = ["息子を名乗る電話でお金を要求された", "夫に殴られる", "いま知らない人に後をつけられてる", "今日の天気は？"]
    proc = run(["chat", "--json"], "\n".join(lines) + "\n", env)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["text"] for o in out] == lines
    assert [o["intent"] for o in out] == ["fraud_phone", "dv", "emergency", None]
    for o in out:
        assert set(o) >= {"text", "intent", "score", "candidates", "messages"}
        assert isinstance(o["score"], float)
        assert all(set(c) == {"intent", "score"} for c in o["candidates"])
        assert 1 <= len(o["messages"]) <= 5 and all("type" in m for m in o["messages"])
    assert "110" in out[2]["messages"][0]["text"]
    # nothing the resident typed reaches the logs
    assert "殴" not in proc.stderr and "息子" not in proc.stderr


def test_chat_json_for_minato(env):
    proc = run(["chat", "--json", "--city", "minato"], "還付金があるって電話がきた\n", env)
    out = json.loads(proc.stdout)
    assert out["intent"] == "fraud_phone"
    assert "疑う" in out["messages"][0]["text"]


def test_chat_unknown_city_is_a_clear_error(env):
    proc = run(["chat", "--json", "--city", "osaka"], "こんにちは\n", env)
    assert proc.returncode == 2 and "unknown city 'osaka'" in proc.stderr


def test_interactive_chat_renders_cards_and_taps_by_number(env):
    proc = run(["chat"], "詐欺かも還付金の電話\n1\n/quit\n", env)
    assert proc.returncode == 0, proc.stderr
    assert "ボット>" in proc.stdout and "┌" in proc.stdout and "tel:" in proc.stdout
    assert "[1]" in proc.stdout


def test_chat_without_redis_url_starts_embedded_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["BOT_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bot", "chat", "--json"], input="夫に殴られる\n",
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["intent"] == "dv"
    assert (tmp_path / "redis.rdb").exists() or any(tmp_path.iterdir())


def test_chat_beside_a_running_server_leaves_its_embedded_redis_running(tmp_path):
    import redis

    from tests.test_store import holders

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["BOT_DATA_DIR"] = str(tmp_path)
    # The server's process starts the embedded Redis as `serve` does (same function, own process).
    with holders(tmp_path) as [(_, role, url)]:
        assert role == "owner"
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        client.set("written-before-chat", "1")

        proc = subprocess.run([sys.executable, "-m", "bot", "chat", "--json"], input="こんにちは\n",
                              capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["text"] == "こんにちは"

        # The chat joined that Redis (no second server on the same files) and left it running.
        assert client.ping()
        assert client.get("written-before-chat") == "1"
        assert json.loads((tmp_path / "redis.rdb.settings").read_text())["unixsocket"] == url.removeprefix("unix://")
        client.close()


def test_check_command_exit_codes(tmp_path, content_copy):
    assert run(["check", "--quiet-warnings"]).returncode == 0
    (content_copy / "intents" / "fraud.yaml").write_text("intents:\n  - id: [broken\n", encoding="utf-8")
    proc = run(["check", "--root", str(content_copy)])
    assert proc.returncode == 1
    assert "intents/fraud.yaml:" in proc.stdout and "YAML syntax" in proc.stdout


def test_evaluate_command_json():
    proc = run(["evaluate", "--json"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["items"] >= 240
    assert {"accuracy", "per_intent", "confused_pairs", "threshold_sweep", "fallback_rate"} <= set(report)


def test_evaluate_rejects_a_malformed_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- text: hello\n  expect: [no_such_intent]\n", encoding="utf-8")
    proc = run(["evaluate", str(bad)])
    assert proc.returncode == 1 and "unknown intent" in proc.stderr


def test_worker_without_a_way_to_line_refuses_clearly(env):
    # No access token and LINE's real address: it would only fail on every chunk.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    proc = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**clean, **env}, timeout=60)
    assert proc.returncode == 2
    assert "LINE_CHANNEL_ACCESS_TOKEN" in proc.stderr and "LINE_API_BASE_URL" in proc.stderr
    local = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], capture_output=True, text=True,
                           cwd=REPO_ROOT, env={**clean, **env, "LINE_API_BASE_URL": "http://127.0.0.1:9/fake-line"},
                           timeout=60)
    assert local.returncode == 0, local.stderr  # a fake LINE API (local serve) is enough: empty queue, done
