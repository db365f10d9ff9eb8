"""One alert to 1,000,000 subscribers through the real delivery engine and the fake LINE API.

For each run (no injected failures, then 10% of multicast requests failing: a third
429, a third 500, a third 500 after acceptance, i.e. lost responses) it starts a
fresh embedded Redis, the fake LINE API and `python -m bot worker` as real
processes, and prints:
- elapsed time from sending the alert (its job queued, a worker already listening,
  as in production) to its last delivery, against the floor set by the rate: the
  multicast requests made (one per chunk, plus every retry) / rate; target within
  1.15x. The floor of one request per chunk is printed beside it,
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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rq import Worker

from bot.broadcast import alerts, engine, queue
from bot.broadcast import status as delivery_status
from bot.content.loader import load_catalog
from bot.core.redis_conn import start_embedded

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "bench-token"
END_STATES = {"done", "stopped_monthly_limit", "failed"}
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


def _own_cpu(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[1])


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the fake LINE API runs in a gunicorn worker)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                seconds, parent = _own_cpu(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
            if int(entry.name) == pid or parent == pid:
                total += seconds
    return total


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
            "countermeasures": ["知らない番号には出ない", "いったん切ってかけ直す", "家族に相談する"],
            "send_now": True})  # whatever the hour (quiet hours would hold a fraud alert until 08:00)
        env = {**os.environ, "REDIS_URL": redis_url, "BOT_DATA_DIR": str(data_dir), "LINE_CHANNEL_SECRET": "s",
               "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": f"http://127.0.0.1:{fake_port}",
               "ALERT_RATE_PER_SECOND": str(rate), "ALERT_SEND_CONCURRENCY": str(concurrency),
               "BOT_LOG_LEVEL": "WARNING"}
        # Workers are long-running in production: start one, wait until it listens, then
        # time the alert from the moment staff send it (the job is queued) to its end.
        worker_started = time.time()
        worker_log = open(data_dir / "worker.log", "w")  # noqa: SIM115 - closed below
        worker = subprocess.Popen([PY, "-m", "bot", "worker"], cwd=ROOT, env=env,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        rq_redis = queue.rq_connection(redis_url)
        while not Worker.all(connection=rq_redis) and worker.poll() is None:
            time.sleep(0.05)
        worker_ready = time.time() - worker_started
        sent_at = time.time()
        queue.enqueue(redis_url, alert_id)
        peak = 0
        cpu0 = {"fake": cpu_seconds(fake.pid), "redis": cpu_seconds(server.pid), "worker": cpu_seconds(worker.pid)}
        # Only memory is sampled while sending: the worker stays up until SIGTERM below, so its
        # CPU is read once at the end (a /proc scan per sample would compete with the run).
        while worker.poll() is None and client.hget(f"alert:{alert_id}", "state") not in END_STATES:
            peak = max(peak, peak_kb(worker.pid))
            time.sleep(0.1)
        cpu = {"worker": cpu_seconds(worker.pid) - cpu0["worker"], "fake LINE": cpu_seconds(fake.pid) - cpu0["fake"],
               "redis": cpu_seconds(server.pid) - cpu0["redis"]}
        worker.send_signal(signal.SIGTERM)  # RQ's warm shut-down: it is idle by now
        worker.wait(60)
        worker_log.close()
        status = delivery_status.alert_status(client, alert_id, rate)
        info = client.hgetall(f"alert:{alert_id}")
        if status.state != "done":
            print((data_dir / "worker.log").read_text()[-3000:])
        summary = http(f"http://127.0.0.1:{fake_port}/fake/recipients")
        stats = http(f"http://127.0.0.1:{fake_port}/fake/stats")
    finally:
        fake.terminate()
        fake.wait(30)
        server.shutdown()

    requests = math.ceil(subscribers / engine.CHUNK)
    made = stats["requests"].get("multicast", 0)
    finished = float(info.get("finished_at", "nan"))
    elapsed = finished - sent_at
    print(f"--- {subscribers:,} subscribers of {topic}, rate {rate:g}/s, {concurrency} chunks in flight, "
          f"injected failures {failure_rate:.0%}")
    print(f"populate Redis: {populate:.1f} s; worker ready after {worker_ready:.1f} s; alert state {status.state}; "
          f"sent {status.sent:,}, failed {status.failed:,}")
    misses = subscribers - summary["users"]
    print(f"multicast requests: {made:,} made for {requests:,} chunks ({made - requests:,} retries)")
    print(f"elapsed from send to last delivery {elapsed:.1f} s")
    print(f"  vs the floor of the requests made ({made:,} / {rate:g} = {made / rate:.1f} s): "
          f"{elapsed / (made / rate):.2f}x (target <= 1.15x)")
    print(f"  vs the floor of one request per chunk ({requests:,} / {rate:g} = {requests / rate:.1f} s): "
          f"{elapsed / (requests / rate):.2f}x")
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
