"""Sending a campaign through the same engine rules as alerts (chunks, retry keys, resume).

Recipients ((topics) x (areas + whole city)) are frozen once as a list; each chunk
of 500 is split by variant. Without click tracking, one multicast per variant per
chunk, tagged with the variant's customAggregationUnits name. With click tracking,
every recipient needs their own link, so it is one push per recipient (status says
so), several in flight under the shared push limiter; each chunk's tokens are stored
before the first attempt, so a resend carries the same links and the same retry keys
(409 = delivered).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

from bot.broadcast import campaigns
from bot.broadcast.delivery import (
    RETRY_NAMESPACE,
    LeaseLost,
    run_job,
    send_with_retries,
)
from bot.core.redis_conn import connect
from bot.line.api import LineApi
from bot.line.ratelimit import RateLimiter
from bot.settings import Settings

CHUNK = 500


def deliver_campaign(campaign_id: str) -> str:
    return run_job(CampaignDelivery, campaign_id)


class CampaignDelivery:
    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings) -> None:
        self.redis = client
        self.api = api
        self.public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        self.multicast_limiter = RateLimiter(client, "multicast", settings.alert_rate_per_second, burst=3)
        # push allows 2,000 requests/s; stay well under it, shared by all workers
        self.push_limiter = RateLimiter(client, "push", 10 * settings.alert_rate_per_second, burst=10)
        self.lease_ms = settings.alert_lease_ms
        self.concurrency = settings.alert_send_concurrency
        self.redis_url = settings.redis_url

    def run(self, campaign_id: str) -> str:
        key = f"campaign:{campaign_id}"
        spec = campaigns.load(self.redis, campaign_id)
        if spec is None:
            return "unknown campaign"
        if self.redis.hget(key, "state") == "done":
            self.redis.srem("campaigns:active", campaign_id)
            return "done"
        lease = f"{key}:lease"
        token = uuid.uuid4().hex
        if not self.redis.set(lease, token, nx=True, px=self.lease_ms):
            return "another worker holds this campaign"
        try:
            total = self._resolve(campaign_id, spec)
            self.redis.hset(key, mapping={"state": "sending", "mode": "push per recipient (tracked links)"
                                          if spec.track_clicks and spec.survey.url else "multicast per variant"})
            for chunk in range(total):
                if self.redis.get(lease) != token:
                    raise LeaseLost(campaign_id)
                self.redis.pexpire(lease, self.lease_ms)
                self._chunk(campaign_id, spec, chunk)
            self.redis.hset(key, mapping={"state": "done", "finished_at": f"{time.time():.3f}"})
            self.redis.srem("campaigns:active", campaign_id)
            # Nothing is resent now: drop who was sent what (a plan ties a resident to their
            # tracked link, and so to their click). Counts per variant stay.
            pipe = self.redis.pipeline(transaction=False)
            pipe.unlink(f"{key}:queue", *(f"{key}:pushed:{n}" for n in range(total)))
            if total:
                pipe.hdel(f"{key}:chunks", *(f"plan:{n}" for n in range(total)))
            pipe.execute()
            self._schedule_insights(campaign_id)
            return "done"
        except LeaseLost:
            return "lease lost"
        finally:
            if self.redis.get(lease) == token:
                self.redis.delete(lease)

    def _schedule_insights(self, campaign_id: str) -> None:
        """LINE's open and click figures come in later: first fetch an hour after sending."""
        import datetime as dt

        from rq import Queue

        from bot.broadcast.delivery import QUEUE, rq_connection

        if self.redis_url:
            Queue(QUEUE, connection=rq_connection(self.redis_url)).enqueue_in(
                dt.timedelta(hours=1), fetch_insights_job, campaign_id)

    def _resolve(self, campaign_id: str, spec: campaigns.CampaignRequest) -> int:
        key = f"campaign:{campaign_id}"
        total = self.redis.hget(key, "chunks_total")
        if total is not None:
            return int(total)
        city = self.redis.hget(key, "city")
        topics = [f"sub:{city}:topic:{t}" for t in spec.topics]
        whole = "all" in spec.areas
        area_ids = self.redis.hget(key, "city_areas").split(",") if whole else spec.areas
        areas = [f"sub:{city}:area:{a}" for a in sorted(set(area_ids) | {"all"})]
        pipe = self.redis.pipeline(transaction=True)
        pipe.sunionstore(f"{key}:t", topics)
        pipe.sunionstore(f"{key}:a", areas)
        pipe.sinterstore(f"{key}:set", [f"{key}:t", f"{key}:a"])
        pipe.sort(f"{key}:set", by="nosort", store=f"{key}:queue")
        pipe.delete(f"{key}:t", f"{key}:a", f"{key}:set")
        pipe.execute()
        recipients = self.redis.llen(f"{key}:queue")
        total_chunks = math.ceil(recipients / CHUNK)
        self.redis.hset(key, mapping={"recipients": recipients, "chunks_total": total_chunks})
        return total_chunks

    def _chunk(self, campaign_id: str, spec: campaigns.CampaignRequest, chunk: int) -> None:
        key = f"campaign:{campaign_id}"
        chunks = f"{key}:chunks"
        state = self.redis.hget(chunks, str(chunk))
        if state == "done":
            return
        tracked = spec.track_clicks and bool(spec.survey.url)
        if state is None:
            users = self.redis.lrange(f"{key}:queue", chunk * CHUNK, (chunk + 1) * CHUNK - 1)
            plan = {}
            for user in users:
                variant = campaigns.assign_variant(campaign_id, user, spec.variants).name
                link = (campaigns.issue_link(self.redis, campaign_id, variant, spec.survey.url) if tracked
                        else None)
                plan[user] = [variant, link]
            # Who gets which variant and which link is fixed before the first attempt.
            self.redis.hset(chunks, mapping={str(chunk): "prepared", f"plan:{chunk}": json.dumps(plan)})
        plan = json.loads(self.redis.hget(chunks, f"plan:{chunk}"))
        variants = {v.name: v for v in spec.variants}
        if tracked:
            sent_key = f"{key}:pushed:{chunk}"
            sent = self.redis.smembers(sent_key)  # an earlier, interrupted pass

            def push(user: str, variant: str, token: str) -> None:
                link = f"{self.public_url}/r/{token}"
                message = campaigns.message_for(campaign_id, spec, variants[variant], link).to_dict()
                result = send_with_retries(lambda: self.api.push(
                    user, [message], str(uuid.uuid5(RETRY_NAMESPACE, f"{campaign_id}:{chunk}:{user}")),
                    [campaigns.unit_name(campaign_id, variant)]), self.push_limiter)
                if result.ok:
                    self.redis.sadd(sent_key, user)

            # One push per resident: several in flight (LINE answers in about 0.1 s; one at a
            # time, Kumamoto's 21,416 would take over half an hour), all under the push limiter.
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="push") as pool:
                for future in [pool.submit(push, user, variant, token)
                               for user, (variant, token) in plan.items() if user not in sent]:
                    future.result()
        else:
            by_variant: dict[str, list[str]] = {}
            for user, (variant, _) in plan.items():
                by_variant.setdefault(variant, []).append(user)
            for variant, users in sorted(by_variant.items()):
                done_key = f"{key}:multicast:{chunk}"
                if self.redis.sismember(done_key, variant):
                    continue
                message = campaigns.message_for(campaign_id, spec, variants[variant], spec.survey.url).to_dict()
                retry_key = str(uuid.uuid5(RETRY_NAMESPACE, f"{campaign_id}:{chunk}:{variant}"))
                unit = campaigns.unit_name(campaign_id, variant)
                result = send_with_retries(lambda: self.api.multicast(users, [message], retry_key, [unit]),
                                    self.multicast_limiter)
                if result.ok:
                    self.redis.sadd(done_key, variant)
        # Count from what LINE accepted (also what an earlier, interrupted pass sent).
        delivered: dict[str, int] = {}
        if tracked:
            pushed = self.redis.smembers(f"{key}:pushed:{chunk}")
            for user, (variant, _) in plan.items():
                if user in pushed:
                    delivered[variant] = delivered.get(variant, 0) + 1
        else:
            sent_variants = self.redis.smembers(f"{key}:multicast:{chunk}")
            for user, (variant, _) in plan.items():
                if variant in sent_variants:
                    delivered[variant] = delivered.get(variant, 0) + 1
        pipe = self.redis.pipeline(transaction=True)
        for variant, count in delivered.items():
            pipe.incrby(f"{key}:delivered:{variant}", count)
        pipe.hset(chunks, str(chunk), "done")
        pipe.execute()



def fetch_insights_job(campaign_id: str) -> str:
    """RQ job: fetch LINE's per-unit statistics, then schedule the next fetch
    (hourly for the first three days, then daily until LINE's 30-day window ends).
    The statistics endpoint allows 60 requests an hour for the whole channel."""
    import datetime as dt

    from linebot.v3.insight import ApiClient as InsightClient
    from linebot.v3.insight import Configuration as InsightConfiguration
    from linebot.v3.insight import Insight
    from rq import Queue

    from bot.broadcast.delivery import QUEUE, rq_connection

    settings = Settings.from_env()
    handle = connect(settings.redis_url, settings.data_dir)
    client = InsightClient(InsightConfiguration(host=settings.line_api_base_url,
                                                access_token=settings.line_channel_access_token or "local"))
    try:
        campaigns.fetch_insights(handle.client, Insight(client), campaign_id, settings.line_timeout_seconds)
        created = float(handle.client.hget(f"campaign:{campaign_id}", "created_at") or time.time())
        age_days = (time.time() - created) / 86400
        if age_days < 30:
            delay = dt.timedelta(hours=1) if age_days < 3 else dt.timedelta(days=1)
            Queue(QUEUE, connection=rq_connection(settings.redis_url)).enqueue_in(delay, fetch_insights_job,
                                                                                 campaign_id)
        return "fetched"
    finally:
        client.close()
        handle.close()
