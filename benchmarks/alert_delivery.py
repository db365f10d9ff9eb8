"""One alert to 1,000,000 subscribers through the real delivery engine and the fake LINE API.

For each run (no injected failures, then 10% of multicast requests failing: a third
429, a third 500, a third 500 after acceptance, i.e. lost responses) it starts a
fresh embedded Redis, the fake LINE API and `python -m bot worker --burst` as real
processes, and prints:
- elapsed time from the worker's start to the alert's end against the floor set by
  the rate (multicast requests / rate; target within 1.15x),
- the worker's peak memory (VmHWM; target under 300 MB),
- duplicates and misses counted by the fake LINE API (target 0).
No pass/fail: it prints what it measured.

Run: .venv/bin/python benchmarks/alert_delivery.py [--subscribers 1000000] [--rate 150]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import alerts, delivery  # noqa: E402
from bot.loader import load_catalog  # noqa: E402
from bot.store import start_embedded  # noqa: E402

TOKEN = "bench-token"
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, data: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read() or b"{}")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(subscribers: int, rate: float, failure_rate: float, concurrency: int, topic: str) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="alert-bench-"))
    server, redis_url = start_embedded(data_dir)
    fake_port = free_port()
    fake = subprocess.Popen([PY, "-m", "bot", "fake-line", "--port", str(fake_port), "--access-token", TOKEN],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
        started = time.perf_counter()
        batch = 10_000
        for start in range(0, subscribers, batch):
            ids = [f"U{n:032x}" for n in range(start, min(subscribers, start + batch))]
            pipe = client.pipeline(transaction=False)
            pipe.sadd("sub:kumamoto:area:chuo", *ids)
            pipe.sadd(f"sub:kumamoto:topic:{topic}", *ids)
            pipe.execute()
        populate = time.perf_counter() - started

        for _ in range(100):
            try:
                http(f"http://127.0.0.1:{fake_port}/fake/stats")
                break
            except OSError:
                time.sleep(0.1)
        http(f"http://127.0.0.1:{fake_port}/fake/config", {"rates": {"multicast": 200}, "failureRate": failure_rate})

        city = load_catalog(ROOT).city("kumamoto")
        alert_id = alerts.create_alert(client, city, {
            "topic": topic, "areas": ["chuo"], "title": "「警察官」を名乗る電話に注意",
            "body": "警察官を名乗り「口座が犯罪に使われている」と言って現金やカードを求める電話。",
            "countermeasures": ["知らない番号には出ない", "いったん切ってかけ直す", "家族に相談する"]})
        delivery.enqueue(redis_url, alert_id)

        env = {**os.environ, "REDIS_URL": redis_url, "BOT_DATA_DIR": str(data_dir), "LINE_CHANNEL_SECRET": "s",
               "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": f"http://127.0.0.1:{fake_port}",
               "ALERT_RATE_PER_SECOND": str(rate), "ALERT_SEND_CONCURRENCY": str(concurrency),
               "BOT_LOG_LEVEL": "WARNING"}
        worker_started = time.time()
        worker_log = open(data_dir / "worker.log", "w")  # noqa: SIM115 - closed below
        worker = subprocess.Popen([PY, "-m", "bot", "worker", "--burst"], cwd=ROOT, env=env,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        peak = 0
        cpu0 = {"fake": cpu_seconds(fake.pid), "redis": cpu_seconds(server.pid)}
        worker_cpu = 0.0
        while worker.poll() is None:
            peak = max(peak, peak_kb(worker.pid))
            worker_cpu = cpu_seconds(worker.pid) or worker_cpu
            time.sleep(0.1)
        cpu = {"worker": worker_cpu, "fake LINE": cpu_seconds(fake.pid) - cpu0["fake"],
               "redis": cpu_seconds(server.pid) - cpu0["redis"]}
        worker_log.close()
        status = alerts.alert_status(client, alert_id, rate)
        info = client.hgetall(f"alert:{alert_id}")
        if status.state != "done":
            print((data_dir / "worker.log").read_text()[-3000:])
        summary = http(f"http://127.0.0.1:{fake_port}/fake/recipients")
        stats = http(f"http://127.0.0.1:{fake_port}/fake/stats")
    finally:
        fake.terminate()
        fake.wait(30)
        server.shutdown()

    requests = math.ceil(subscribers / delivery.CHUNK)
    floor = requests / rate
    elapsed = float(info["finished_at"]) - worker_started if info.get("finished_at") else float("nan")
    misses = subscribers - summary["users"]
    print(f"--- {subscribers:,} subscribers of {topic}, rate {rate:g}/s, {concurrency} chunks in flight, "
          f"injected failures {failure_rate:.0%}")
    print(f"populate Redis: {populate:.1f} s; alert state {status.state}; sent {status.sent:,}, failed {status.failed:,}")
    made = stats['requests'].get('multicast', 0)
    print(f"multicast requests at the fake: {made:,} (chunks {requests:,}); against the floor of the requests "
          f"actually made ({made / rate:.1f} s): {(float(info.get('finished_at', 'nan')) - worker_started) / (made / rate):.2f}x")
    job = float(info["finished_at"]) - float(info["started_at"])
    print(f"elapsed {elapsed:.1f} s vs floor {floor:.1f} s = {elapsed / floor:.2f}x (target <= 1.15x); of which "
          f"worker process start-up {float(info['started_at']) - worker_started:.1f} s, then the job "
          f"(claiming and sending overlap) {job:.1f} s = {job / floor:.2f}x")
    print(f"worker peak memory {peak / 1024:.0f} MB (target < 300 MB)")
    print("CPU seconds during the run (2 cores shared): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    print(f"duplicates {summary['duplicates']:,}, misses {misses:,} (target 0 and 0)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--failures", type=float, nargs="*", default=[0.0, 0.1])
    parser.add_argument("--topic", default="fraud", help="fraud (daily cap applies) or emergency (never capped)")
    args = parser.parse_args()
    for failure_rate in args.failures:
        run(args.subscribers, args.rate, failure_rate, args.concurrency, args.topic)


if __name__ == "__main__":
    main()
