"""The delivery engine: an alert becomes an RQ job that multicasts it in chunks of 500.

Never loses, never doubles:
- Recipients are resolved inside Redis once (SUNIONSTORE of the areas, SINTERSTORE
  with the topic) and frozen as a list, so chunk i is always the same people.
- Before a chunk is first sent, its recipients after the daily cap and its
  X-Line-Retry-Key are stored. Every retry, by this worker or another after a
  crash (kill -9), resends exactly that chunk with that key; LINE answers 409 for
  an accepted key, which counts as delivered.
- A chunk is marked done only after LINE accepted it. A lease with a heartbeat
  lets one worker at a time run an alert; `python -m bot worker` re-queues alerts
  whose lease has expired (their worker died).
- 429 and 5xx are retried with backoff behind one Redis-wide rate limiter; the
  monthly-limit 429 stops the job with a clear state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import redis
from rq import Queue

from bot.alerts import alert_key
from bot.line_api import LineApi, SendResult
from bot.ratelimit import RateLimiter
from bot.settings import Settings
from bot.store import connect
from bot.subscriptions import ALL_AREAS

log = logging.getLogger(__name__)
QUEUE = "alerts"
CHUNK = 500
MAX_ATTEMPTS = 8
RETRY_NAMESPACE = uuid.UUID("6f1d3c8e-2b7a-4c55-9f0e-5d1c2a7b9e41")
JST = ZoneInfo("Asia/Tokyo")
UNCAPPED_TOPICS = {"emergency"}

# Daily cap, idempotent per (alert, resident): one hash per day, field = resident,
# value = the ids of the alerts counted for them today. A resident already counted
# for this alert stays in (a resend after a crash is not a second alert).
# ARGV: alert id, date, cap, ttl seconds, then the user ids. Returns the allowed ids.
_CAP = """
local key = 'alertcap:' .. ARGV[2]
local needle = ',' .. ARGV[1] .. ','
local cap = tonumber(ARGV[3])
local out = {}
for i = 5, #ARGV do
  local seen = redis.call('HGET', key, ARGV[i])
  if not seen then
    redis.call('HSET', key, ARGV[i], ARGV[1])
    out[#out + 1] = ARGV[i]
  elseif string.find(',' .. seen .. ',', needle, 1, true) then
    out[#out + 1] = ARGV[i]
  else
    local _, commas = string.gsub(seen, ',', '')
    if commas + 1 < cap then
      redis.call('HSET', key, ARGV[i], seen .. ',' .. ARGV[1])
      out[#out + 1] = ARGV[i]
    end
  end
end
redis.call('EXPIRE', key, tonumber(ARGV[4]))
return out
"""


def rq_connection(redis_url: str) -> redis.Redis:
    # RQ stores pickled payloads: it needs a client that does not decode responses.
    return redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=2)


def enqueue(redis_url: str, alert_id: str) -> None:
    Queue(QUEUE, connection=rq_connection(redis_url)).enqueue(
        deliver_alert, alert_id, job_timeout=24 * 3600, result_ttl=7 * 24 * 3600,
        description=f"deliver alert {alert_id}")


def enqueue_campaign(redis_url: str, campaign_id: str) -> None:
    from bot.campaign_delivery import deliver_campaign

    rq_connection(redis_url).sadd("campaigns:active", campaign_id)
    Queue(QUEUE, connection=rq_connection(redis_url)).enqueue(
        deliver_campaign, campaign_id, job_timeout=24 * 3600, result_ttl=7 * 24 * 3600,
        description=f"deliver campaign {campaign_id}")


def run_job(runner: type, item_id: str) -> str:
    """An RQ job's body: configuration comes from the worker's environment (never from the queue)."""
    settings = Settings.from_env()
    handle = connect(settings.redis_url, settings.data_dir)
    api = LineApi(settings, retries=0)
    try:
        return runner(handle.client, api, settings).run(item_id)
    finally:
        api.close()
        handle.close()


def deliver_alert(alert_id: str) -> str:
    return run_job(Delivery, alert_id)


def send_with_retries(call: Callable[[], SendResult], limiter: RateLimiter) -> SendResult:
    """One request, paced by the shared limiter, retried on 429 (rate) and 5xx/timeouts
    with the same retry key (inside `call`); 409 means LINE accepted it already."""
    result = SendResult(False, 0)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        limiter.acquire()
        result = call()
        if result.ok or result.status == 409:
            return SendResult(True, result.status, result.request_id, None, attempt)
        if result.monthly_limit:
            return result
        if not (result.status == 0 or result.status >= 500 or result.status == 429):
            return result
        # LINE does not say how long to wait; back off, at least a second after a 429.
        time.sleep(min(30.0, (1.0 if result.status == 429 else 0.2) * 2 ** (attempt - 1)))
    return result


def requeue_stalled(client: redis.Redis, redis_url: str) -> list[str]:
    """Alerts a worker started and did not finish (its lease ran out): queue them again.

    Alerts still "queued" have their job waiting in RQ already."""
    queued = []
    for alert_id in sorted(client.smembers("alerts:active")):
        if client.hget(alert_key(alert_id), "state") == "sending" and not client.exists(f"{alert_key(alert_id)}:lease"):
            enqueue(redis_url, alert_id)
            queued.append(alert_id)
    for campaign_id in sorted(client.smembers("campaigns:active")):
        key = f"campaign:{campaign_id}"
        if client.hget(key, "state") == "sending" and not client.exists(f"{key}:lease"):
            enqueue_campaign(redis_url, campaign_id)
            queued.append(campaign_id)
    return queued


class Delivery:
    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings) -> None:
        self.redis = client
        self.api = api
        self.cap = settings.alert_daily_cap
        self.lease_ms = settings.alert_lease_ms
        self.concurrency = settings.alert_send_concurrency
        # A small burst lets a late request catch up (thread wake-up jitter) without ever
        # passing rate + burst in any second: 150/s + 3 stays far under LINE's 200/s.
        self.limiter = RateLimiter(client, "multicast", settings.alert_rate_per_second, burst=3)
        self._cap_script = client.register_script(_CAP)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------ lease

    def _lease(self, alert_id: str) -> bool:
        key = f"{alert_key(alert_id)}:lease"
        if self.redis.set(key, self.token, nx=True, px=self.lease_ms):
            return True
        return self.redis.get(key) == self.token

    def _heartbeat(self, alert_id: str) -> None:
        key = f"{alert_key(alert_id)}:lease"
        if self.redis.get(key) != self.token:
            # Another worker took over (ours was presumed dead): stop rather than double up.
            raise LeaseLost(alert_id)
        self.redis.pexpire(key, self.lease_ms)

    def _release(self, alert_id: str) -> None:
        key = f"{alert_key(alert_id)}:lease"
        if self.redis.get(key) == self.token:
            self.redis.delete(key)

    # ------------------------------------------------------------ the job

    def run(self, alert_id: str) -> str:
        akey = alert_key(alert_id)
        alert = self.redis.hgetall(akey)
        if not alert:
            return "unknown alert"
        if alert.get("state") in ("done", "stopped_monthly_limit"):
            self.redis.srem("alerts:active", alert_id)
            return alert["state"]
        if not self._lease(alert_id):
            return "another worker holds this alert"
        try:
            total = self._resolve(alert_id, alert)
            self.redis.hset(akey, mapping={"state": "sending", "started_at": alert.get("started_at") or
                                           f"{time.time():.3f}"})
            messages = [json.loads(alert["message"])]
            capped = alert["topic"] not in UNCAPPED_TOPICS
            stop = threading.Event()

            def one(chunk: int) -> str:
                return "stopped" if stop.is_set() else self._chunk(alert_id, chunk, messages, capped)

            # A few chunks in flight at once (all paced by the shared rate limiter), so one
            # worker keeps up with the rate while it also prepares the next chunks.
            monthly_limit = False
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="chunk") as pool:
                try:
                    for outcome in pool.map(one, range(total)):
                        self._heartbeat(alert_id)
                        if outcome == "monthly_limit":
                            monthly_limit = True
                            stop.set()
                except LeaseLost:
                    stop.set()
                    raise
            if monthly_limit:
                self.redis.hset(akey, mapping={
                    "state": "stopped_monthly_limit",
                    "error": "LINE's monthly message limit was reached: delivery stopped; "
                             "it resumes when re-queued after the limit is raised"})
                self.redis.srem("alerts:active", alert_id)
                return "stopped_monthly_limit"
            self.redis.hset(akey, mapping={"state": "done", "finished_at": f"{time.time():.3f}"})
            self.redis.srem("alerts:active", alert_id)
            return "done"
        except LeaseLost:
            log.warning("alert %s: lease taken over by another worker; stopping here", alert_id)
            return "lease lost"
        finally:
            self._release(alert_id)

    def _resolve(self, alert_id: str, alert: dict[str, str]) -> int:
        """Freeze the recipients once: (union of areas and 'all') ∩ topic, as a list."""
        akey = alert_key(alert_id)
        queue = f"{akey}:queue"
        if alert.get("chunks_total") not in (None, ""):
            return int(alert["chunks_total"])
        started = time.perf_counter()
        city, topic = alert["city"], alert["topic"]
        areas = set(alert["areas"].split(","))
        # A ward alert reaches that ward's subscribers and those who chose the whole
        # city; a whole-city alert reaches every area's subscribers.
        wanted = set(alert["city_areas"].split(",")) if ALL_AREAS in areas else areas | {ALL_AREAS}
        area_keys = [f"sub:{city}:area:{a}" for a in sorted(wanted)]
        union, chosen = f"{akey}:areas", f"{akey}:set"
        # Skip copying a million ids into a union when only one area set has anyone.
        sizes = self.redis.pipeline(transaction=False)
        for key in area_keys:
            sizes.scard(key)
        populated = [k for k, n in zip(area_keys, sizes.execute()) if n]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(queue)
        if len(populated) == 1:
            pipe.sinterstore(chosen, [populated[0], f"sub:{city}:topic:{topic}"])
        else:
            pipe.sunionstore(union, populated or area_keys)
            pipe.sinterstore(chosen, [union, f"sub:{city}:topic:{topic}"])
        # SET -> LIST without sorting (BY nosort): the list freezes one order for good.
        pipe.sort(chosen, by="nosort", store=queue)
        pipe.delete(union, chosen)
        pipe.execute()
        recipients = self.redis.llen(queue)
        total = math.ceil(recipients / CHUNK)
        self.redis.hset(akey, mapping={"recipients": recipients, "chunks_total": total,
                                       "resolve_ms": round((time.perf_counter() - started) * 1000)})
        log.info("alert %s: %d recipients in %d chunks", alert_id, recipients, total)
        return total

    def _chunk(self, alert_id: str, chunk: int, messages: list[dict], capped: bool) -> str:
        akey = alert_key(alert_id)
        chunks, members = f"{akey}:chunks", f"{akey}:chunk:{chunk}"
        state = self.redis.hget(chunks, str(chunk))
        if state and state.startswith(("done", "failed")):
            return "skip"
        if state is None:
            # First time: decide who receives this chunk and store it with its retry key.
            raw = self.redis.lrange(f"{akey}:queue", chunk * CHUNK, (chunk + 1) * CHUNK - 1)
            allowed = raw
            if capped and raw:
                today = dt.datetime.now(JST).date().isoformat()
                allowed = self._cap_script(args=[alert_id, today, self.cap, 2 * 24 * 3600, *raw])
            retry_key = str(uuid.uuid5(RETRY_NAMESPACE, f"{alert_id}:{chunk}"))
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(members)
            # The frozen queue slice already says who gets the chunk; store a list only
            # when the cap took someone out ("prepared:all" = the whole slice).
            whole = len(allowed) == len(raw)
            if allowed and not whole:
                pipe.rpush(members, *allowed)
            pipe.hset(chunks, mapping={str(chunk): "prepared:all" if whole else "prepared",
                                       f"key:{chunk}": retry_key, f"first:{chunk}": f"{time.time():.3f}"})
            pipe.hincrby(akey, "capped", len(raw) - len(allowed))
            pipe.execute()
            recipients = raw if whole else allowed
        else:
            # A resend (this worker's retry loop ended, or another worker died mid-chunk):
            # exactly the stored people, with the stored key.
            queue = f"{akey}:queue"
            recipients = (self.redis.lrange(queue, chunk * CHUNK, (chunk + 1) * CHUNK - 1)
                          if state == "prepared:all" else self.redis.lrange(members, 0, -1))
            retry_key = self.redis.hget(chunks, f"key:{chunk}")
        if not recipients:
            self._finish(akey, chunks, chunk, "done", 0, 0)
            return "done"
        result = self._send(recipients, messages, retry_key)
        if result.monthly_limit:
            return "monthly_limit"
        if result.ok:
            self._finish(akey, chunks, chunk, "done", len(recipients), 0)
            return "done"
        log.error("alert %s chunk %d failed: status=%s request_id=%s", alert_id, chunk, result.status,
                  result.request_id)
        self._finish(akey, chunks, chunk, f"failed:{result.status}", 0, len(recipients))
        return "failed"

    def _finish(self, akey: str, chunks: str, chunk: int, state: str, sent: int, failed: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(chunks, str(chunk), state)
        pipe.hincrby(akey, "chunks_done", 1)
        pipe.hincrby(akey, "sent", sent)
        pipe.hincrby(akey, "failed", failed)
        pipe.execute()

    def _send(self, recipients: list[str], messages: list[dict], retry_key: str) -> SendResult:
        return send_with_retries(lambda: self.api.multicast(recipients, messages, retry_key), self.limiter)


class LeaseLost(Exception):
    pass
