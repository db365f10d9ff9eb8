"""What staff do, shared by the staff API and the CLI."""

from __future__ import annotations

import datetime as dt
import time
from typing import cast

import redis

from bot.broadcast import alerts, campaigns
from bot.broadcast.queue import enqueue, enqueue_campaign
from bot.broadcast.scripts import START_OR_CANCEL
from bot.broadcast.status import AlertStatus, alert_status
from bot.content.loader import City
from bot.core.clock import JST
from bot.core.keys import alert_key, campaign_key


def send_alert(client: redis.Redis, redis_url: str, city: City, data: object,
               rate_per_second: float, at: dt.datetime | None = None, alert_id: str | None = None) -> AlertStatus:
    """Validate and store the alert, queue its delivery (now, at `at`, or when quiet hours
    end), and return its status (`scheduled_for` says when it is held back).
    Raises alerts.AlertError for a request staff must correct. With `alert_id` (the staff
    record's id) an alert stored already is not stored or queued again."""
    if alert_id is not None and client.exists(alert_key(alert_id)):
        status = alert_status(client, alert_id, rate_per_second)
        assert status is not None
        return status
    alert_id = alerts.create_alert(client, city, data, at=at, alert_id=alert_id)
    enqueue(redis_url, alert_id)
    status = alert_status(client, alert_id, rate_per_second)
    assert status is not None  # just stored
    return status


def send_campaign(client: redis.Redis, redis_url: str, city: City, campaign_id: str,
                  now: dt.datetime | None = None, at: dt.datetime | None = None) -> str | None:
    """Queue a campaign's delivery: now, at `at`, or, in the city's quiet hours, when they end
    (an awareness campaign is never urgent). Returns that time (ISO, JST) when held back.
    Raises LookupError for an unknown campaign, campaigns.CampaignError when it was sent already."""
    key = campaign_key(campaign_id)
    if campaigns.load(client, campaign_id) is None:
        raise LookupError(campaign_id)
    if client.hget(key, "state") not in ("draft", "stopped_monthly_limit"):
        state = cast("str | None", client.hget(key, "state"))  # the client decodes responses: str, not bytes
        raise campaigns.CampaignError(f"キャンペーン {campaign_id} は送信済みです（{state}）")
    now = now or dt.datetime.now(JST)
    start = at if at is not None and at > now else now
    release = alerts.quiet_until(city.config.quiet_hours, None, start) or (start if start > now else None)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, "state", "queued")
    if release is not None:
        pipe.hset(key, "not_before", f"{release.timestamp():.0f}")
    pipe.execute()
    enqueue_campaign(redis_url, campaign_id, at=release)
    return release.isoformat() if release is not None else None


def cancel(client: redis.Redis, key: str) -> str:
    """Cancel a queued alert or campaign (`key`: its hash) before a worker starts it. Returns
    the state it had: "queued" (now cancelled), "" (no such item), or the state that made it
    too late ("sending", "done", ...). One atomic step against the worker's start."""
    script = client.register_script(START_OR_CANCEL)
    return str(script(keys=[key], args=["cancelled", f"{time.time():.3f}"]))
