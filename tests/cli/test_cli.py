"""The command line: in-process through click's CliRunner (real Redis, real content), and as
a user runs it (`python -m bot` subprocesses) where the process itself is what is tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from bot.cli import cli
from bot.settings import REPO_ROOT


def run(args, stdin="", env_extra=None, timeout=60):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=timeout)


def invoke(args, stdin="", env=None) -> Result:
    """The command in this process; `env` overlays os.environ for the call (None unsets)."""
    return CliRunner().invoke(cli, args, input=stdin, env=env, catch_exceptions=False)


@pytest.fixture
def env(redis_url, redis_client, tmp_path):
    return {"REDIS_URL": redis_url, "BOT_DATA_DIR": str(tmp_path)}


@pytest.mark.subprocess
def test_chat_json_contract(env):
    # the smoke test: a real `python -m bot`, its stdout and its stderr
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
    result = invoke(["chat", "--json", "--city", "minato"], "還付金があるって電話がきた\n", env)
    out = json.loads(result.stdout)
    assert out["intent"] == "fraud_phone"
    assert "疑う" in out["messages"][0]["text"]


def test_chat_unknown_city_is_a_clear_error(env):
    result = invoke(["chat", "--json", "--city", "osaka"], "こんにちは\n", env)
    assert result.exit_code == 2 and "unknown city 'osaka'" in result.stderr


def test_interactive_chat_renders_cards_and_taps_by_number(env):
    result = invoke(["chat"], "詐欺かも還付金の電話\n1\n/quit\n", env)
    assert result.exit_code == 0, result.stderr
    assert "ボット>" in result.stdout and "┌" in result.stdout and "tel:" in result.stdout
    assert "[1]" in result.stdout


def test_chat_without_redis_url_starts_embedded_redis(tmp_path):
    result = invoke(["chat", "--json"], "夫に殴られる\n", {"REDIS_URL": None, "BOT_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["intent"] == "dv"
    assert (tmp_path / "redis.rdb").exists() or any(tmp_path.iterdir())


@pytest.mark.subprocess
def test_chat_beside_a_running_server_leaves_its_embedded_redis_running(tmp_path):
    import redis

    from tests.core.test_store import holders

    # The server's process starts the embedded Redis as `serve` does (same function, own process).
    with holders(tmp_path) as [(_, role, url)]:
        assert role == "owner"
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        client.set("written-before-chat", "1")

        result = invoke(["chat", "--json"], "こんにちは\n", {"REDIS_URL": None, "BOT_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["text"] == "こんにちは"

        # The chat joined that Redis (no second server on the same files) and left it running.
        assert client.ping()
        assert client.get("written-before-chat") == "1"
        assert json.loads((tmp_path / "redis.rdb.settings").read_text())["unixsocket"] == url.removeprefix("unix://")
        client.close()


def test_check_command_exit_codes(tmp_path, content_copy):
    assert invoke(["check", "--quiet-warnings"]).exit_code == 0
    (content_copy / "intents" / "fraud.yaml").write_text("intents:\n  - id: [broken\n", encoding="utf-8")
    result = invoke(["check", "--root", str(content_copy)])
    assert result.exit_code == 1
    assert "intents/fraud.yaml:" in result.stdout and "YAML syntax" in result.stdout


def test_evaluate_command_json():
    result = invoke(["evaluate", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] >= 240
    assert {"accuracy", "per_intent", "confused_pairs", "threshold_sweep", "fallback_rate"} <= set(report)


def test_evaluate_rejects_a_malformed_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- text: hello\n  expect: [no_such_intent]\n", encoding="utf-8")
    result = invoke(["evaluate", str(bad)])
    assert result.exit_code == 1 and "unknown intent" in result.stderr


def test_worker_without_a_way_to_line_refuses_clearly(env):
    # No access token and LINE's real address: it would only fail on every chunk.
    no_line = {k: None for k in os.environ if k.startswith("LINE_")}
    result = invoke(["worker", "--burst"], env={**no_line, **env})
    assert result.exit_code == 2
    assert "LINE_CHANNEL_ACCESS_TOKEN" in result.stderr and "LINE_API_BASE_URL" in result.stderr


@pytest.mark.subprocess
def test_worker_with_a_fake_line_api_runs(env):
    # its own process: an RQ worker takes over the signal handlers
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    local = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], capture_output=True, text=True,
                           cwd=REPO_ROOT, env={**clean, **env, "LINE_API_BASE_URL": "http://127.0.0.1:9/fake-line"},
                           timeout=60)
    assert local.returncode == 0, local.stderr  # a fake LINE API (local serve) is enough: empty queue, done


def test_usage_errors_and_bad_settings_exit_2(tmp_path):
    assert invoke([]).exit_code == 2  # a command is required
    assert invoke(["alert"]).exit_code == 2
    assert invoke(["chat", "--no-such-option"]).exit_code == 2
    assert invoke(["alert", "send", "--areas", "all", "--title", "t", "--body", "b"]).exit_code == 2  # no --topic
    assert invoke(["richmenu", "publish"]).exit_code == 2
    help_text = invoke(["-h"], env={"PORT": "abc"})  # help never depends on the environment
    assert help_text.exit_code == 0 and "alert" in help_text.stdout and "campaign" in help_text.stdout
    bad = invoke(["check"], env={"PORT": "abc", "BOT_DATA_DIR": str(tmp_path)})
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["PORT: must be an integer (got 'abc')"]


def test_alerts_and_campaigns_need_a_shared_redis():
    for args in (["alert", "status", "x"], ["campaign", "stats", "x"]):
        result = invoke(args, env={"REDIS_URL": None})
        assert result.exit_code == 2 and "set REDIS_URL" in result.stderr


@pytest.mark.subprocess
def test_worker_alert_and_campaign_commands_never_load_the_matcher(env):
    script = ("import sys; from bot.cli import main; "
              "codes = [main(a) for a in (['alert', 'status', 'x'], ['campaign', 'stats', 'x'], "
              "['alert', 'digest'], ['worker', '--burst'])]; "
              "print(codes, 'sklearn' in sys.modules, 'bot.understanding.matcher' in sys.modules)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**clean, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[1, 1, 1, 2] False False"


@pytest.mark.parametrize("command", [["serve", "--port", "70000"], ["fake-line", "--port", "0"]])
def test_a_port_out_of_range_is_a_usage_error_not_a_traceback(command):
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2 and "--port" in result.output and "Traceback" not in result.output
