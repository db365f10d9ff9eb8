"""RQ entry points only: each builds what its job needs from the worker's environment and
runs one delivery. Queued by name (bot.broadcast.queue); nothing imports this module but
the worker command (for `requeue_stalled`)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol, cast

import redis

from bot.broadcast import campaigns
from bot.broadcast.alert_delivery import AlertDelivery
from bot.broadcast.campaign_delivery import CampaignDelivery
from bot.broadcast.digest import DigestDelivery
from bot.broadcast.queue import enqueue, enqueue_campaign, schedule_insights
from bot.core.keys import ALERTS_ACTIVE, CAMPAIGNS_ACTIVE, alert_key, campaign_key, lease_key
from bot.core.redis_conn import connect
from bot.line.api import LineApi, insight_client
from bot.settings import Settings


class Runner(Protocol):
    def run(self, item_id: str) -> str: ...


def run_job(runner: type[Runner], item_id: str) -> str:
    """An RQ job's body: configuration comes from the worker's environment (never from the queue)."""
    settings = Settings.from_env()
    handle = connect(settings.redis_url, settings.data_dir)
    api = LineApi(settings, retries=0)
    try:
        return runner(handle.client, api, settings).run(item_id)  # type: ignore[call-arg]
    finally:
        api.close()
        handle.close()


def deliver_alert(alert_id: str) -> str:
    return run_job(AlertDelivery, alert_id)


def deliver_digest(city_id: str, day: str) -> str:
    return run_job(DigestDelivery, f"{city_id}:{day}")


def deliver_campaign(campaign_id: str) -> str:
    return run_job(CampaignDelivery, campaign_id)


def fetch_insights(campaign_id: str) -> str:
    """Fetch LINE's per-unit statistics, then schedule the next fetch (hourly for the first
    three days, then daily until LINE's 30-day window ends). The statistics endpoint
    allows 60 requests an hour for the whole channel."""
    from linebot.v3.insight import Insight

    settings = Settings.from_env()
    handle = connect(settings.redis_url, settings.data_dir)
    client = insight_client(settings)
    try:
        campaigns.fetch_insights(handle.client, Insight(client), campaign_id, settings.line_timeout_seconds)
        created = float(handle.client.hget(campaign_key(campaign_id), "created_at") or time.time())
        age_days = (time.time() - created) / 86400
        if age_days < 30:
            # handle.url is settings.redis_url (jobs run only in a worker, which needs REDIS_URL)
            schedule_insights(handle.url, campaign_id,
                              dt.timedelta(hours=1) if age_days < 3 else dt.timedelta(days=1))
        return "fetched"
    finally:
        client.close()
        handle.close()


def requeue_stalled(client: redis.Redis, redis_url: str) -> list[str]:
    """Alerts and campaigns a worker started and did not finish (its lease ran out): queue
    them again. Alerts still "queued" have their job waiting in RQ already (digest groups aside)."""
    queued = []
    # the client decodes responses: str, not bytes
    for alert_id in sorted(cast("set[str]", client.smembers(ALERTS_ACTIVE))):
        state, target = client.hmget(alert_key(alert_id), "state", "target")
        # A digest group has no job of its own: the day's digest job runs it, so one left
        # "queued" by a dead worker is queued here too (a second run is harmless: lease, chunk states).
        stalled = state == "sending" or (state == "queued" and target)
        if stalled and not client.exists(lease_key(alert_key(alert_id))):
            enqueue(redis_url, alert_id)
            queued.append(alert_id)
    # the client decodes responses: str, not bytes
    for campaign_id in sorted(cast("set[str]", client.smembers(CAMPAIGNS_ACTIVE))):
        key = campaign_key(campaign_id)
        if client.hget(key, "state") == "sending" and not client.exists(lease_key(key)):
            enqueue_campaign(redis_url, campaign_id)
            queued.append(campaign_id)
    return queued
