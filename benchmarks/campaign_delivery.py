"""A campaign with tracked links (one push per resident, each with its own survey link)
through the real campaign engine and the fake LINE API in its own process.

LINE answers a push in roughly 0.1 s; the fake answers at once, so `--latency` adds
that wait to every call on the client side (bot.line.bulk_push, before each request). For each number of pushes in flight it
prints the wall time, pushes per second, the estimate for Kumamoto's 21,416 residents
of 「くらしの安全」, and duplicates and misses counted by the fake LINE API.
No pass/fail: it prints what it measured.

Run: .venv/bin/python benchmarks/campaign_delivery.py [--residents 21416] [--latency 0.1] [--lanes 32]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

from bot.broadcast import actions, campaigns
from bot.broadcast.campaign_delivery import PUSH_LANES_PER_CHUNK_LANE, CampaignDelivery
from bot.content.loader import load_catalog
from bot.core.clock import JST
from bot.core.redis_conn import start_embedded
from bot.line.api import LineApi
from bot.line.bulk_push import BulkPusher
from bot.settings import REPO_ROOT as ROOT
from bot.settings import Settings

PY = sys.executable
KUMAMOTO_GROUP = 21_416  # 「くらしの安全」 delivery group, 2024 (alerts-and-campaigns.md §4.1)
SPEC = {"name": "認知度調査", "topics": ["safety"], "areas": ["all"], "track_clicks": True,
        "variants": [{"name": "A", "title": "くらしの安全アンケート", "text": "相談先を知っていますか？ 1分で答えられます。"}],
        "survey": {"url": "https://example.city.jp/survey", "questions": [
            {"text": "事件にあったときの相談先を知っていますか？", "options": ["知っている", "知らない"]}]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(residents: int, latency: float, lanes: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    server, url = start_embedded(data_dir)
    port = free_port()
    fake = subprocess.Popen([PY, "-m", "bot", "fake-line", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/fake/stats", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        client = redis.Redis.from_url(url, decode_responses=True)
        pipe = client.pipeline(transaction=False)
        for n in range(residents):
            pipe.sadd("sub:kumamoto:area:chuo", f"U{n:032x}")
            pipe.sadd("sub:kumamoto:topic:safety", f"U{n:032x}")
        pipe.execute()
        campaign_id = campaigns.create_campaign(client, "kumamoto",
                                                ["chuo", "higashi", "nishi", "minami", "kita", "all"], SPEC)
        settings = Settings(redis_url=url, data_dir=data_dir, line_channel_secret="s", line_channel_access_token="t",
                            line_api_base_url=f"http://127.0.0.1:{port}", public_url="https://bot.example.jp",
                            alert_send_concurrency=lanes)
        api = LineApi(settings, retries=0)
        post = BulkPusher._post

        async def like_line(self, body, headers):  # noqa: ANN001, ANN202
            await asyncio.sleep(latency)  # LINE's answer time, which the local fake does not have
            return await post(self, body, headers)

        BulkPusher._post = like_line  # type: ignore[method-assign]
        noon = dt.datetime.now(JST).replace(hour=12)  # outside quiet hours
        actions.send_campaign(client, url, load_catalog(ROOT).city("kumamoto"), campaign_id, now=noon)
        started = time.perf_counter()
        state = CampaignDelivery(client, api, settings).run(campaign_id)
        elapsed = time.perf_counter() - started
        api.close()
        summary = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/fake/recipients").read())
    finally:
        fake.terminate()
        fake.wait(30)
        server.shutdown()
    rate = residents / elapsed
    floor = 10 * settings.alert_rate_per_second  # the push limiter's rate: no run can beat it
    print(f"{lanes:>3} chunk lanes ({lanes * PUSH_LANES_PER_CHUNK_LANE} pushes in flight): {residents:,} pushes in "
          f"{elapsed:.1f} s ({rate:.0f}/s, {rate / floor:.2f}x the push limiter's {floor:.0f}/s; {state}); "
          f"Kumamoto's {KUMAMOTO_GROUP:,} would take about {KUMAMOTO_GROUP / rate / 60:.1f} min; "
          f"duplicates {summary['duplicates']}, misses {residents - summary['users']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=21_416)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to each push (LINE's answer time)")
    parser.add_argument("--lanes", type=int, nargs="*", default=[32])
    args = parser.parse_args()
    print(f"--- tracked campaign, {args.latency:g} s per LINE call")
    for lanes in args.lanes:
        run(args.residents, args.latency, lanes)


if __name__ == "__main__":
    main()
