"""Sustained signed-message events per second through `python -m bot serve`, with p50/p99 latency.

Starts the fake LINE API and the bot (gunicorn, 2 workers x 8 threads) as real
processes against a real Redis (REDIS_URL, else an embedded one), then sends
LINE-shaped, signed text events from client processes for a fixed time and
prints the figures. Target (issue 3): >= 300 events/s with p99 < 100 ms on this
2-core machine. No pass/fail: it prints what it measured.

Run: .venv/bin/python benchmarks/webhook_throughput.py [--seconds 20] [--clients 2] [--threads 6]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bot.line.signature import sign

ROOT = Path(__file__).resolve().parent.parent


SECRET, TOKEN = "bench-secret", "bench-token"
MESSAGES = ["息子を名乗る電話でお金を要求された", "夫に殴られる", "今日の天気は？", "還付金があるって電話きた",
            "SNSで知り合った人に投資をすすめられた", "こんにちは", "電話番号は？", "ありがとう"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def client(port: int, fake_port: int, seconds: float, threads: int, out: mp.Queue, seed: int) -> None:
    import threading

    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds

    def tokens(user: str, n: int) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", fake_port, timeout=10)
        conn.request("POST", "/fake/reply-token", json.dumps({"userId": user, "count": n}),
                     {"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())["replyTokens"]

    def worker(k: int) -> None:
        user = f"U{seed:08x}{k:024x}"
        pool = tokens(user, 4000)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.monotonic() < stop_at and pool:
            text = MESSAGES[n % len(MESSAGES)]
            n += 1
            event = {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
                     "webhookEventId": uuid.uuid4().hex.upper()[:26], "deliveryContext": {"isRedelivery": False},
                     "source": {"type": "user", "userId": user}, "replyToken": pool.pop(),
                     "message": {"type": "text", "id": str(n), "text": text, "quoteToken": "q"}}
            body = json.dumps({"destination": "U" + "0" * 32, "events": [event]}, ensure_ascii=False).encode()
            sig = sign(body, SECRET)
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/callback", body, {"Content-Type": "application/json", "X-Line-Signature": sig})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, errors[0]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    embedded = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        from bot.core.redis_conn import start_embedded
        embedded, redis_url = start_embedded(data_dir)
    fake_port, port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "BOT_DATA_DIR": str(data_dir), "LINE_CHANNEL_SECRET": SECRET,
           "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": f"http://127.0.0.1:{fake_port}",
           "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8", "BOT_LOG_LEVEL": "WARNING"}
    py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
    fake = subprocess.Popen([py, "-m", "bot", "fake-line", "--port", str(fake_port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bot = subprocess.Popen([py, "-m", "bot", "serve", "--port", str(port)], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(f"http://127.0.0.1:{fake_port}/fake/stats")
        wait(f"http://127.0.0.1:{port}/healthz")
        urllib.request.urlopen(urllib.request.Request(  # LINE's 2,000/s reply limit is not the subject here
            f"http://127.0.0.1:{fake_port}/fake/config", data=json.dumps({"rates": {"reply": 0}}).encode(),
            headers={"Content-Type": "application/json"}, method="POST"))
        queue: mp.Queue = mp.Queue()
        started = time.perf_counter()
        procs = [mp.Process(target=client, args=(port, fake_port, args.seconds, args.threads, queue, n))
                 for n in range(args.clients)]
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # let the last replies land
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{fake_port}/fake/stats").read())
    finally:
        bot.terminate()
        fake.terminate()
        bot.wait(15)
        fake.wait(15)
        if embedded is not None:
            embedded.shutdown()

    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"webhook benchmark: {args.clients} client processes x {args.threads} threads, {args.seconds:.0f} s, "
          f"redis {'embedded' if embedded else 'REDIS_URL'}")
    print(f"events answered 200: {len(latencies)}  errors: {errors}  replies at fake LINE: "
          f"{stats['requests'].get('reply', 0)}")
    print(f"throughput: {len(latencies) / elapsed:.0f} events/s (target >= 300)")
    print(f"latency ms: p50 {pct(0.5):.1f}  p90 {pct(0.9):.1f}  p99 {pct(0.99):.1f}  max {latencies[-1]:.1f} "
          f"(target p99 < 100)")


if __name__ == "__main__":
    main()
