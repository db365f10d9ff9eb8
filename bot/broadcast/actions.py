"""What staff do, shared by the staff API and the CLI."""

from __future__ import annotations

import datetime as dt
from typing import cast

import redis

from bot.broadcast import alerts, campaigns
from bot.broadcast.queue import enqueue, enqueue_campaign
from bot.broadcast.status import AlertStatus, alert_status
from bot.content.loader import City
from bot.core.clock import JST
from bot.core.keys import campaign_key


def send_alert(client: redis.Redis, redis_url: str, city: City, data: object,
               rate_per_second: float) -> AlertStatus:
    """What staff do (API, CLI): validate and store the alert, queue its delivery, and
    return its status (`scheduled_for` says when quiet hours hold it back).
    Raises alerts.AlertError for a request staff must correct."""
    alert_id = alerts.create_alert(client, city, data)
    enqueue(redis_url, alert_id)
    status = alert_status(client, alert_id, rate_per_second)
    assert status is not None  # just stored
    return status


def send_campaign(client: redis.Redis, redis_url: str, city: City, campaign_id: str,
                  now: dt.datetime | None = None) -> str | None:
    """Queue a campaign's delivery: now, or, in the city's quiet hours, when they end (an
    awareness campaign is never urgent). Returns that time (ISO, JST) when held back.
    Raises LookupError for an unknown campaign, campaigns.CampaignError when it was sent already."""
    key = campaign_key(campaign_id)
    if campaigns.load(client, campaign_id) is None:
        raise LookupError(campaign_id)
    if client.hget(key, "state") not in ("draft", "stopped_monthly_limit"):
        state = cast("str | None", client.hget(key, "state"))  # the client decodes responses: str, not bytes
        raise campaigns.CampaignError(f"campaign {campaign_id} was sent already ({state})")
    release = alerts.quiet_until(city.config.quiet_hours, None, now or dt.datetime.now(JST))
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, "state", "queued")
    if release is not None:
        pipe.hset(key, "not_before", f"{release.timestamp():.0f}")
    pipe.execute()
    enqueue_campaign(redis_url, campaign_id, at=release)
    return release.isoformat() if release is not None else None
