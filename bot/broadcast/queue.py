"""Putting delivery jobs on RQ's queue. Jobs are named by dotted path (bot.broadcast.jobs),
so nothing imports the job entry points and the queue never imports the engine."""

from __future__ import annotations

import datetime as dt
import time

import redis
from rq import Queue

from bot.core.clock import JST
from bot.core.keys import CAMPAIGNS_ACTIVE, alert_key, digest_key

QUEUE = "alerts"
JOBS = "bot.broadcast.jobs"


def rq_connection(redis_url: str) -> redis.Redis:
    # RQ stores pickled payloads: it needs a client that does not decode responses.
    return redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=2)


def queue_job(redis_url: str, job: str, *args: str, description: str, at: dt.datetime | None = None) -> None:
    """Put a job of bot.broadcast.jobs (by name) on the queue: now, or at `at` (RQ's
    scheduler, which every `python -m bot worker` runs, releases it then)."""
    queue = Queue(QUEUE, connection=rq_connection(redis_url))
    options = {"job_timeout": 24 * 3600, "result_ttl": 7 * 24 * 3600, "description": description}
    if at is not None and at.timestamp() > time.time():
        queue.enqueue_at(at.astimezone(dt.timezone.utc), f"{JOBS}.{job}", *args, **options)
    else:
        queue.enqueue(f"{JOBS}.{job}", *args, **options)


def enqueue(redis_url: str, alert_id: str) -> None:
    """Queue an alert's delivery: now, or when the city's quiet hours end (its `not_before`)."""
    not_before = rq_connection(redis_url).hget(alert_key(alert_id), "not_before")
    queue_job(redis_url, "deliver_alert", alert_id, description=f"deliver alert {alert_id}",
              at=dt.datetime.fromtimestamp(int(not_before), JST) if not_before else None)


def enqueue_campaign(redis_url: str, campaign_id: str, at: dt.datetime | None = None) -> None:
    rq_connection(redis_url).sadd(CAMPAIGNS_ACTIVE, campaign_id)
    queue_job(redis_url, "deliver_campaign", campaign_id, description=f"deliver campaign {campaign_id}", at=at)


def schedule_digest(redis_url: str, city_id: str, slot: dt.datetime) -> None:
    """Queue the day's digest job once (RQ's scheduler releases it at `slot`)."""
    day = slot.astimezone(JST).date().isoformat()
    if rq_connection(redis_url).set(f"{digest_key(city_id, day)}:scheduled", "1", nx=True, ex=14 * 24 * 3600):
        queue_job(redis_url, "deliver_digest", city_id, day, description=f"digest {city_id} {day}", at=slot)


def schedule_insights(redis_url: str, campaign_id: str, delay: dt.timedelta) -> None:
    """LINE's open and click figures come in later: fetch them after `delay`."""
    Queue(QUEUE, connection=rq_connection(redis_url)).enqueue_in(delay, f"{JOBS}.fetch_insights", campaign_id)
