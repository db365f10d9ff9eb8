"""The delivery engine: an alert becomes an RQ job that multicasts it in chunks of 500.

Never loses, never doubles:
- Recipients are claimed inside Redis while sending goes on: an atomic Lua step scans
  the topic's subscribers, keeps those in a wanted area, skips anyone already claimed
  for this alert and fills chunk lists of 500: chunk i is always the same people.
  Claiming runs ahead of sending (up to 4x the chunks in flight), so senders never
  wait for recipients.
- Before a chunk is first sent, one atomic step applies the daily cap and stores its
  recipients and X-Line-Retry-Key. Every retry, by this worker or another after a
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
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import redis
from rq import Queue

from bot.broadcast import alerts, digest
from bot.broadcast.alerts import alert_key
from bot.broadcast.subscriptions import ALL_AREAS, Subscriptions
from bot.content.loader import City
from bot.core.clock import JST
from bot.core.redis_conn import connect
from bot.line.api import LineApi, SendResult
from bot.line.ratelimit import RateLimiter
from bot.settings import Settings

log = logging.getLogger(__name__)
QUEUE = "alerts"
CHUNK = 500
MAX_ATTEMPTS = 8
RETRY_NAMESPACE = uuid.UUID("6f1d3c8e-2b7a-4c55-9f0e-5d1c2a7b9e41")
UNCAPPED_TOPICS = {"emergency", "digest"}  # a digest is one message a day (bot.broadcast.digest)

# Prepare a chunk for its first send, or read back what was stored for a resend, in one
# atomic step (a crash can never leave the cap counted but the chunk unprepared).
# First time: apply the daily cap (one hash per day, field = resident, value = the ids
# of the alerts counted for them today; a resident already counted for this alert
# stays in), store who receives the chunk and its retry key. The claimed list already
# says who gets it; another list is stored only when the cap took someone out
# ("prepared:all" = the whole claimed list).
# KEYS: chunks hash, claimed list, send-to list, alert hash, cap hash.
# ARGV: chunk, alert id, cap (0 = uncapped), cap ttl seconds, retry key, now.
# Returns {} when the chunk is finished already, else {retry key, recipients...}.
_PREPARE = """
local chunk = ARGV[1]
local state = redis.call('HGET', KEYS[1], chunk)
if not state or string.find(state, 'done', 1, true) == 1 or string.find(state, 'failed', 1, true) == 1 then
  return {}
end
if state ~= 'claimed' then
  -- A resend (this worker's retries ran out, or another worker died mid-chunk):
  -- exactly the stored people, with the stored key.
  local list = KEYS[3]
  if state == 'prepared:all' then list = KEYS[2] end
  local out = redis.call('LRANGE', list, 0, -1)
  table.insert(out, 1, redis.call('HGET', KEYS[1], 'key:' .. chunk))
  return out
end
local raw = redis.call('LRANGE', KEYS[2], 0, -1)
local cap = tonumber(ARGV[3])
local out = {ARGV[5]}
if cap == 0 or #raw == 0 then
  for i = 1, #raw do out[i + 1] = raw[i] end
else
  local needle = ',' .. ARGV[2] .. ','
  local updates = {}
  -- one read and one write for the whole chunk (a call per resident costs Redis 3x the CPU)
  local counted = redis.call('HMGET', KEYS[5], unpack(raw))
  for i, uid in ipairs(raw) do
    local seen = counted[i]
    if not seen then
      updates[#updates + 1] = uid
      updates[#updates + 1] = ARGV[2]
      out[#out + 1] = uid
    elseif string.find(',' .. seen .. ',', needle, 1, true) then
      out[#out + 1] = uid
    else
      local _, commas = string.gsub(seen, ',', '')
      if commas + 1 < cap then
        updates[#updates + 1] = uid
        updates[#updates + 1] = seen .. ',' .. ARGV[2]
        out[#out + 1] = uid
      end
    end
  end
  if #updates > 0 then redis.call('HSET', KEYS[5], unpack(updates)) end
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[4]))
end
local allowed = #out - 1
redis.call('DEL', KEYS[3])
if allowed < #raw and allowed > 0 then redis.call('RPUSH', KEYS[3], unpack(out, 2)) end
local prepared = 'prepared'
if allowed == #raw then prepared = 'prepared:all' end
redis.call('HSET', KEYS[1], chunk, prepared, 'key:' .. chunk, ARGV[5], 'first:' .. chunk, ARGV[6])
redis.call('HINCRBY', KEYS[4], 'capped', #raw - allowed)
return out
"""


# Claim the next recipients while sending goes on (no up-front copy of a million ids):
# one SSCAN step over the topic set, keep those in a wanted area, drop anyone already
# claimed for this alert (SSCAN may repeat members if the set changes meanwhile), and
# append them to the open chunk list; a list that reaches CHUNK (or the last one, when
# the scan ends) is marked claimed, and only then may a sender take it. All in one
# atomic step, so a crash never leaves anyone claimed but in no chunk.
# An alert with an English version has two streams of chunks: "0", "1", ... (Japanese)
# and "en:0", "en:1", ... for residents who set up their alerts in English.
# Residents who chose the daily digest are set aside for it (bot.broadcast.digest), not messaged.
# KEYS: topic set, seen set, alert hash, chunks hash, English set, digest set, deferred
# set, then the area sets.
# ARGV: cursor, scan count, chunk size, chunk list prefix, "1" to split by language,
# "1" to set digest residents aside. Returns {cursor, claimed, claimed_en}.
_CLAIM = """
local res = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local cursor = res[1]
local batch = res[2]
local fresh = {}
if #batch > 0 then
  -- batch-wide membership tests (SMISMEMBER, Redis 6.2+) rather than a call per resident
  local wanted = {}
  for k = 8, #KEYS do
    local member = redis.call('SMISMEMBER', KEYS[k], unpack(batch))
    for i = 1, #batch do
      if member[i] == 1 then wanted[i] = true end
    end
  end
  local candidates, dup = {}, {}
  for i = 1, #batch do
    if wanted[i] and not dup[batch[i]] then
      dup[batch[i]] = true
      candidates[#candidates + 1] = batch[i]
    end
  end
  if #candidates > 0 then
    local seen = redis.call('SMISMEMBER', KEYS[2], unpack(candidates))
    for i = 1, #candidates do
      if seen[i] == 0 then fresh[#fresh + 1] = candidates[i] end
    end
    if #fresh > 0 then redis.call('SADD', KEYS[2], unpack(fresh)) end
  end
end
if ARGV[6] == '1' and #fresh > 0 and redis.call('SCARD', KEYS[6]) > 0 then
  local digest = redis.call('SMISMEMBER', KEYS[6], unpack(fresh))
  local now, later = {}, {}
  for i = 1, #fresh do
    if digest[i] == 1 then later[#later + 1] = fresh[i] else now[#now + 1] = fresh[i] end
  end
  if #later > 0 then
    redis.call('SADD', KEYS[7], unpack(later))
    redis.call('EXPIRE', KEYS[7], 1209600)
    redis.call('HINCRBY', KEYS[3], 'deferred', #later)
  end
  fresh = now
end
local japanese, english = fresh, {}
if ARGV[5] == '1' and #fresh > 0 then
  japanese = {}
  local en = redis.call('SMISMEMBER', KEYS[5], unpack(fresh))
  for i = 1, #fresh do
    if en[i] == 1 then english[#english + 1] = fresh[i] else japanese[#japanese + 1] = fresh[i] end
  end
end
local size = tonumber(ARGV[3])
local function fill(stream, field, members)
  local claimed = tonumber(redis.call('HGET', KEYS[3], field) or '0')
  local i = 1
  while i <= #members do
    local list = ARGV[4] .. stream .. claimed
    local room = size - redis.call('LLEN', list)
    local last = math.min(#members, i + room - 1)
    redis.call('RPUSH', list, unpack(members, i, last))
    if last - i + 1 == room then
      redis.call('HSET', KEYS[4], stream .. claimed, 'claimed')
      claimed = claimed + 1
    end
    i = last + 1
  end
  if cursor == '0' and redis.call('LLEN', ARGV[4] .. stream .. claimed) > 0 then
    redis.call('HSET', KEYS[4], stream .. claimed, 'claimed')
    claimed = claimed + 1
  end
  redis.call('HSET', KEYS[3], field, claimed)
  return claimed
end
local claimed = fill('', 'claimed', japanese)
local claimed_en = fill('en:', 'claimed_en', english)
redis.call('HINCRBY', KEYS[3], 'recipients', #fresh)
redis.call('HSET', KEYS[3], 'cursor', cursor)
if cursor == '0' then
  redis.call('HSET', KEYS[3], 'scan_done', '1', 'chunks_total', claimed + claimed_en)
end
return {cursor, claimed, claimed_en}
"""
# Extend our lease if it is still ours. KEYS: lease. ARGV: token, ms. Returns 1 or 0.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# SSCAN's COUNT is a hint; batches stay far below Lua's unpack limit (about 8,000 values).
SCAN_COUNT = 1000


def rq_connection(redis_url: str) -> redis.Redis:
    # RQ stores pickled payloads: it needs a client that does not decode responses.
    return redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=2)


def send_alert(client: redis.Redis, redis_url: str, city: City, data: object,
               rate_per_second: float) -> alerts.AlertStatus:
    """What staff do (API, CLI): validate and store the alert, queue its delivery, and
    return its status (`scheduled_for` says when quiet hours hold it back).
    Raises alerts.AlertError for a request staff must correct."""
    alert_id = alerts.create_alert(client, city, data)
    enqueue(redis_url, alert_id)
    status = alerts.alert_status(client, alert_id, rate_per_second)
    assert status is not None  # just stored
    return status


def queue_job(redis_url: str, func: Callable[..., str], *args: str, description: str,
              at: dt.datetime | None = None) -> None:
    """Put a delivery job on the queue: now, or at `at` (RQ's scheduler, which every
    `python -m bot worker` runs, releases it then)."""
    queue = Queue(QUEUE, connection=rq_connection(redis_url))
    options = {"job_timeout": 24 * 3600, "result_ttl": 7 * 24 * 3600, "description": description}
    if at is not None and at.timestamp() > time.time():
        queue.enqueue_at(at.astimezone(dt.timezone.utc), func, *args, **options)
    else:
        queue.enqueue(func, *args, **options)


def enqueue(redis_url: str, alert_id: str) -> None:
    """Queue an alert's delivery: now, or when the city's quiet hours end (its `not_before`)."""
    not_before = rq_connection(redis_url).hget(alert_key(alert_id), "not_before")
    queue_job(redis_url, deliver_alert, alert_id, description=f"deliver alert {alert_id}",
              at=dt.datetime.fromtimestamp(int(not_before), JST) if not_before else None)


def enqueue_campaign(redis_url: str, campaign_id: str) -> None:
    from bot.broadcast.campaign_delivery import deliver_campaign

    rq_connection(redis_url).sadd("campaigns:active", campaign_id)
    queue_job(redis_url, deliver_campaign, campaign_id, description=f"deliver campaign {campaign_id}")


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
        # LINE does not say how long to wait: back off exponentially, longer after a 429;
        # the shared limiter already paces everyone, so the first waits can be short.
        time.sleep(min(30.0, (0.5 if result.status == 429 else 0.1) * 2 ** (attempt - 1)))
    return result


def requeue_stalled(client: redis.Redis, redis_url: str) -> list[str]:
    """Alerts a worker started and did not finish (its lease ran out): queue them again.

    Alerts still "queued" have their job waiting in RQ already (digest groups aside)."""
    queued = []
    for alert_id in sorted(client.smembers("alerts:active")):
        state, target = client.hmget(alert_key(alert_id), "state", "target")
        # A digest group has no job of its own: the day's digest job runs it, so one left
        # "queued" by a dead worker is queued here too (a second run is harmless: lease, chunk states).
        stalled = state == "sending" or (state == "queued" and target)
        if stalled and not client.exists(f"{alert_key(alert_id)}:lease"):
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
        self.redis_url = settings.redis_url
        # A small burst lets a late request catch up (thread wake-up jitter) without ever
        # passing rate + burst in any second: 150/s + 3 stays far under LINE's 200/s.
        self.limiter = RateLimiter(client, "multicast", settings.alert_rate_per_second, burst=3)
        self._prepare_script = client.register_script(_PREPARE)
        self._claim_script = client.register_script(_CLAIM)
        self._extend_script = client.register_script(_EXTEND)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._renewed = 0.0

    # ------------------------------------------------------------ lease

    def _lease(self, alert_id: str) -> bool:
        key = f"{alert_key(alert_id)}:lease"
        if self.redis.set(key, self.token, nx=True, px=self.lease_ms):
            self._renewed = time.monotonic()
            return True
        return self.redis.get(key) == self.token

    def _heartbeat(self, alert_id: str) -> None:
        # A few renewals per lease period are enough (not one per chunk: that would put
        # two Redis calls per chunk on the claiming thread).
        if time.monotonic() - self._renewed < self.lease_ms / 5000.0:
            return
        if not self._extend_script(keys=[f"{alert_key(alert_id)}:lease"], args=[self.token, self.lease_ms]):
            # Another worker took over (ours was presumed dead): stop rather than double up.
            raise LeaseLost(alert_id)
        self._renewed = time.monotonic()

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
            self.redis.hset(akey, mapping={"state": "sending", "started_at": alert.get("started_at") or
                                           f"{time.time():.3f}"})
            # Chunk ids: "0", "1", ... (Japanese) and "en:0", ... (the English version, if written).
            streams = {"": [json.loads(alert["message"])]}
            if alert.get("message_en"):
                streams["en:"] = [json.loads(alert["message_en"])]
            capped = alert["topic"] not in UNCAPPED_TOPICS
            stop = threading.Event()
            monthly_limit = False
            in_flight: set[Future] = set()

            def settle(future: Future) -> None:
                nonlocal monthly_limit
                if future.result() == "monthly_limit":
                    monthly_limit = True
                    stop.set()
                self._heartbeat(alert_id)

            # Claiming and sending overlap: chunks go out (several in flight, all paced by
            # the shared rate limiter) while the next recipients are being claimed.
            claimed = {"": int(alert.get("claimed") or 0), "en:": int(alert.get("claimed_en") or 0)}
            scan_done, cursor = alert.get("scan_done") == "1", alert.get("cursor") or "0"
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="chunk") as pool:
                try:
                    submitted = {stream: 0 for stream in claimed}
                    while not stop.is_set():
                        for stream, messages in streams.items():
                            while submitted[stream] < claimed[stream]:
                                in_flight.add(pool.submit(self._chunk, alert_id, f"{stream}{submitted[stream]}",
                                                          messages, capped, stop))
                                submitted[stream] += 1
                        # Claim ahead while there is room; a chunk sleeping in backoff
                        # holds its own lane only, never the others.
                        finished, _ = wait(in_flight, timeout=0 if len(in_flight) < 4 * self.concurrency else None,
                                           return_when=FIRST_COMPLETED)
                        for future in finished:
                            in_flight.discard(future)
                            settle(future)
                        if scan_done:
                            break
                        cursor, claimed[""], claimed["en:"] = self._claim(alert_id, alert, cursor)
                        scan_done = cursor == "0"
                    for future in list(in_flight):
                        settle(future)
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
            self._forget_recipients(akey, claimed)
            if alert.get("digest_at") and int(self.redis.hget(akey, "deferred") or 0):
                slot = dt.datetime.fromtimestamp(int(alert["digest_at"]), JST)
                digest.schedule(self.redis_url, alert["city"], slot)
            return "done"
        except LeaseLost:
            log.warning("alert %s: lease taken over by another worker; stopping here", alert_id)
            return "lease lost"
        finally:
            self._release(alert_id)

    def _forget_recipients(self, akey: str, claimed: dict[str, int]) -> None:
        """Once every chunk is finished nothing is resent: who got the alert is not kept
        (unfollow must leave no trace, and a 1M alert's lists would hold about 50 MB).
        The counts, chunk states and retry keys stay for the status; the residents set
        aside for the digest stay until the digest has taken them."""
        keys = [f"{akey}:seen"]
        for stream, count in claimed.items():
            for n in range(count):
                keys += [f"{akey}:chunk:{stream}{n}", f"{akey}:sendto:{stream}{n}"]
        for start in range(0, len(keys), 1000):
            self.redis.unlink(*keys[start:start + 1000])

    def _claim(self, alert_id: str, alert: dict[str, str], cursor: str) -> tuple[str, int, int]:
        """One claiming step: topic subscribers in a wanted area, cut into chunks.
        Returns the scan cursor ("0" once the scan is complete) and the chunks claimed
        (Japanese, English)."""
        akey = alert_key(alert_id)
        subs = Subscriptions(self.redis, alert["city"])
        if alert.get("target"):
            # A delivery to a set of its own (a digest group): everyone in it.
            source, area_keys = alert["target"], [alert["target"]]
        else:
            source = f"sub:{subs.city}:topic:{alert['topic']}"
            areas = set(alert["areas"].split(","))
            # A ward alert reaches that ward's subscribers and those who chose the whole
            # city; a whole-city alert reaches every area's subscribers.
            wanted = set(alert["city_areas"].split(",")) if ALL_AREAS in areas else areas | {ALL_AREAS}
            area_keys = [f"sub:{subs.city}:area:{a}" for a in sorted(wanted)]
        keys = [source, f"{akey}:seen", akey, f"{akey}:chunks", subs.english_key, subs.digest_key,
                f"{akey}:deferred", *area_keys]
        split = "1" if alert.get("message_en") else "0"
        defer = "1" if alert.get("digest_at") else "0"
        cursor, claimed, claimed_en = self._claim_script(
            keys=keys, args=[cursor, SCAN_COUNT, CHUNK, f"{akey}:chunk:", split, defer])
        return str(cursor), int(claimed), int(claimed_en)

    def _chunk(self, alert_id: str, chunk: str, messages: list[dict], capped: bool,
               stop: threading.Event | None = None) -> str:
        if stop is not None and stop.is_set():
            return "stopped"
        akey = alert_key(alert_id)
        chunks = f"{akey}:chunks"
        today = dt.datetime.now(JST).date().isoformat()
        retry_key = str(uuid.uuid5(RETRY_NAMESPACE, f"{alert_id}:{chunk}"))
        # The first time: the cap applied and who receives it stored with its retry key;
        # on a resend, exactly what was stored. One round trip either way.
        prepared = self._prepare_script(
            keys=[chunks, f"{akey}:chunk:{chunk}", f"{akey}:sendto:{chunk}", akey, f"alertcap:{today}"],
            args=[chunk, alert_id, self.cap if capped else 0, 2 * 24 * 3600, retry_key, f"{time.time():.3f}"])
        if not prepared:
            return "skip"
        retry_key, recipients = prepared[0], prepared[1:]
        if not recipients:
            self._finish(akey, chunks, chunk, "done", 0, 0)
            return "done"
        result = self._send(recipients, messages, retry_key)
        if result.monthly_limit:
            return "monthly_limit"
        if result.ok:
            self._finish(akey, chunks, chunk, "done", len(recipients), 0)
            return "done"
        log.error("alert %s chunk %s failed: status=%s request_id=%s", alert_id, chunk, result.status,
                  result.request_id)
        self._finish(akey, chunks, chunk, f"failed:{result.status}", 0, len(recipients))
        return "failed"

    def _finish(self, akey: str, chunks: str, chunk: str, state: str, sent: int, failed: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(chunks, chunk, state)
        pipe.hincrby(akey, "chunks_done", 1)
        pipe.hincrby(akey, "sent", sent)
        pipe.hincrby(akey, "failed", failed)
        pipe.execute()

    def _send(self, recipients: list[str], messages: list[dict], retry_key: str) -> SendResult:
        return send_with_retries(lambda: self.api.multicast(recipients, messages, retry_key), self.limiter)


class LeaseLost(Exception):
    pass
