"""The broadcast engine: one RQ job sends one alert, digest group or campaign, in chunks of 500.

Every broadcast goes through the same steps: claim -> prepare -> send -> finish -> forget.
A `Kind` (alert, campaign) says only what differs: where its recipients are, whether the
daily cap applies, how one chunk is sent and what follows the end.

Never loses, never doubles:
- Recipients are claimed inside Redis while sending goes on: an atomic Lua step scans
  the audience set, keeps those in a wanted area, skips anyone already claimed for this
  item and fills chunk lists of 500: chunk i is always the same people. Claiming runs
  ahead of sending (up to 4x the chunks in flight), so senders never wait for recipients.
- Before a chunk is first sent, one atomic step applies the daily cap and freezes its
  recipients and its X-Line-Retry-Key. Every retry, by this worker or another after a
  crash (kill -9), resends exactly that chunk with that key; LINE answers 409 for an
  accepted key, which counts as delivered.
- A chunk is marked done only after LINE accepted it. A lease (redis-py's Lock, with a
  heartbeat) lets one worker at a time run an item; `python -m bot worker` re-queues
  items whose lease has expired (their worker died).
- 429 and 5xx are retried with backoff behind one Redis-wide rate limiter; the
  monthly-limit 429 stops the job with a clear state.
- Once every chunk is finished, who was sent what is dropped (counts stay).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol, cast

import redis
from redis.exceptions import LockError

from bot.broadcast.scripts import CLAIM, PREPARE, SCAN_COUNT, START_OR_CANCEL
from bot.core.clock import JST
from bot.core.keys import daily_cap_key, lease_key, sub_digest_key, sub_english_key
from bot.line.api import LineApi
from bot.line.ratelimit import RateLimiter
from bot.settings import Settings

log = logging.getLogger(__name__)
CHUNK = 500
RETRY_NAMESPACE = uuid.UUID("6f1d3c8e-2b7a-4c55-9f0e-5d1c2a7b9e41")


@dataclass(frozen=True)
class Audience:
    """Where one claiming step looks: the set scanned, the area sets a recipient must be in
    one of, and whether English readers and digest residents are set apart."""

    source: str
    areas: list[str]
    split_language: bool = False
    defer_to_digest: bool = False


@dataclass(frozen=True)
class ChunkResult:
    sent: int
    failed: int
    monthly_limit: bool = False
    status: int = 200  # LINE's status when the chunk failed
    units: Mapping[str, int] = field(default_factory=dict)  # delivered per unit (a campaign's variants)


class Kind(Protocol):
    """What an alert and a campaign do differently; the engine does the rest."""

    active: str  # the set of unfinished items of this kind

    def key(self, item_id: str) -> str: ...

    def ready(self, engine: Engine, item_id: str, item: dict[str, str]) -> str | None:
        """None to go ahead, or why not now (the job's result)."""

    def audience(self, engine: Engine, item_id: str, item: dict[str, str]) -> Audience: ...

    def capped(self, item: dict[str, str]) -> bool: ...

    def send(self, engine: Engine, item_id: str, item: dict[str, str], chunk: str, recipients: list[str],
             retry_key: str) -> ChunkResult: ...

    def leftovers(self, item_id: str, chunks: list[str]) -> list[str]:
        """Keys of this kind that name residents, dropped once every chunk is finished."""

    def finished(self, engine: Engine, item_id: str, item: dict[str, str]) -> None: ...

    def close(self) -> None:
        """Free what sending needed (a campaign's push threads)."""


class LeaseLost(Exception):
    pass


class Engine:
    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings, kind: Kind) -> None:
        self.redis = client
        self.api = api
        self.kind = kind
        self.cap = settings.alert_daily_cap
        self.lease_s = settings.alert_lease_ms / 1000.0
        self.concurrency = settings.alert_send_concurrency
        self.redis_url = settings.redis_url
        # A small burst lets a late request catch up (thread wake-up jitter) without ever
        # passing rate + burst in any second: 150/s + 3 stays far under LINE's 200/s.
        self.multicast_limiter = RateLimiter(client, "multicast", settings.alert_rate_per_second, burst=3)
        # push allows 2,000 requests/s; stay well under it, shared by all workers
        self.push_limiter = RateLimiter(client, "push", 10 * settings.alert_rate_per_second, burst=10)
        self._prepare_script = client.register_script(PREPARE)
        self._claim_script = client.register_script(CLAIM)
        self._start_script = client.register_script(START_OR_CANCEL)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock: redis.lock.Lock | None = None
        self._finished = threading.Event()  # tells the keep-alive thread to stop
        self.lost = threading.Event()  # set when another worker took the item over

    # ------------------------------------------------------------ lease

    def _lease(self, item_id: str) -> bool:
        self._lock = self.redis.lock(lease_key(self.kind.key(item_id)), timeout=self.lease_s, blocking=False,
                                     thread_local=False)
        return bool(self._lock.acquire(token=self.token)) or self._lock.owned()

    def _keep_lease(self) -> None:
        """Renew the lease three times per period, on a thread of its own: a chunk of 500
        pushes takes longer than a lease, and renewing between chunks would let it lapse."""
        while not self._finished.wait(self.lease_s / 3):
            try:
                assert self._lock is not None
                self._lock.reacquire()
            except LockError:
                # Another worker took over (ours was presumed dead): stop rather than double up.
                self.lost.set()
                return

    def _heartbeat(self) -> None:
        if self.lost.is_set():
            raise LeaseLost()

    def _release(self) -> None:
        self._finished.set()
        if self._lock is not None:
            try:
                self._lock.release()
            except LockError:
                pass  # expired or taken over: not ours to delete
            self._lock = None

    # ------------------------------------------------------------ the job

    def run(self, item_id: str) -> str:
        key = self.kind.key(item_id)
        item = cast("dict[str, str]", self.redis.hgetall(key))  # the client decodes responses: str, not bytes
        if not item:
            return "unknown"
        if item.get("state") in ("done", "stopped_monthly_limit", "cancelled"):
            self.redis.srem(self.kind.active, item_id)
            return item["state"]
        not_ready = self.kind.ready(self, item_id, item)
        if not_ready:
            return not_ready
        if not self._lease(item_id):
            return "another worker holds it"
        self._finished.clear()
        self.lost.clear()
        keeper = threading.Thread(target=self._keep_lease, name="lease", daemon=True)
        keeper.start()
        try:
            if self._start_script(keys=[key], args=["sending", f"{time.time():.3f}"]) not in ("queued", "sending"):
                self.redis.srem(self.kind.active, item_id)
                return "cancelled"  # staff cancelled it before it started: nothing is sent
            outcome, claimed = self._deliver(item_id, item)
            if outcome == "monthly_limit":
                self.redis.hset(key, mapping={
                    "state": "stopped_monthly_limit",
                    "error": "LINE's monthly message limit was reached: delivery stopped; "
                             "it resumes when re-queued after the limit is raised"})
                self.redis.srem(self.kind.active, item_id)
                return "stopped_monthly_limit"
            self.redis.hset(key, mapping={"state": "done", "finished_at": f"{time.time():.3f}"})
            self.redis.srem(self.kind.active, item_id)
            self._forget(item_id, claimed)
            # the client decodes responses: str, not bytes
            self.kind.finished(self, item_id, cast("dict[str, str]", self.redis.hgetall(key)))
            return "done"
        except LeaseLost:
            log.warning("%s: lease taken over by another worker; stopping here", key)
            return "lease lost"
        finally:
            self._release()
            keeper.join()
            self.kind.close()

    def _deliver(self, item_id: str, item: dict[str, str]) -> tuple[str, dict[str, int]]:
        """Claim and send until the audience is exhausted. Returns "done" or "monthly_limit",
        and the chunks claimed per stream ("" Japanese, "en:" English)."""
        capped = self.kind.capped(item)
        stop = threading.Event()
        monthly_limit = False
        in_flight: set[Future] = set()

        def settle(future: Future) -> None:
            nonlocal monthly_limit
            if future.result() == "monthly_limit":
                monthly_limit = True
                stop.set()
            self._heartbeat()

        self._heartbeat()

        # Claiming and sending overlap: chunks go out (several in flight, all paced by the
        # shared rate limiter) while the next recipients are being claimed.
        claimed = {"": int(item.get("claimed") or 0), "en:": int(item.get("claimed_en") or 0)}
        scan_done, cursor = item.get("scan_done") == "1", item.get("cursor") or "0"
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="chunk") as pool:
            try:
                submitted = {stream: 0 for stream in claimed}
                while not stop.is_set():
                    for stream in claimed:
                        while submitted[stream] < claimed[stream]:
                            in_flight.add(pool.submit(self._chunk, item_id, item, f"{stream}{submitted[stream]}",
                                                      capped, stop))
                            submitted[stream] += 1
                    # Claim ahead while there is room; a chunk sleeping in backoff holds
                    # its own lane only, never the others.
                    finished, _ = wait(in_flight, timeout=0 if len(in_flight) < 4 * self.concurrency else None,
                                       return_when=FIRST_COMPLETED)
                    for future in finished:
                        in_flight.discard(future)
                        settle(future)
                    if scan_done:
                        break
                    self._heartbeat()
                    cursor, claimed[""], claimed["en:"] = self._claim(item_id, item, cursor)
                    scan_done = cursor == "0"
                for future in list(in_flight):
                    settle(future)
            except LeaseLost:
                stop.set()
                raise
        return ("monthly_limit" if monthly_limit else "done"), claimed

    def _forget(self, item_id: str, claimed: dict[str, int]) -> None:
        """Once every chunk is finished nothing is resent: who got what is not kept
        (unfollow must leave no trace, and a 1M alert's lists would hold about 50 MB).
        The counts, chunk states and retry keys stay for the status; residents set aside
        for the digest stay until the digest has taken them."""
        key = self.kind.key(item_id)
        chunks = [f"{stream}{n}" for stream, count in claimed.items() for n in range(count)]
        keys = [f"{key}:seen"] + [k for c in chunks for k in (f"{key}:chunk:{c}", f"{key}:sendto:{c}")]
        keys += self.kind.leftovers(item_id, chunks)
        for start in range(0, len(keys), 1000):
            self.redis.unlink(*keys[start:start + 1000])

    def _claim(self, item_id: str, item: dict[str, str], cursor: str) -> tuple[str, int, int]:
        """One claiming step: audience members in a wanted area, cut into chunks. Returns
        the scan cursor ("0" once the scan is complete) and the chunks claimed (Japanese, English)."""
        key = self.kind.key(item_id)
        audience = self.kind.audience(self, item_id, item)
        city = item.get("city", "")
        keys = [audience.source, f"{key}:seen", key, f"{key}:chunks", sub_english_key(city), sub_digest_key(city),
                f"{key}:deferred",
                *audience.areas]
        cursor, claimed, claimed_en = self._claim_script(
            keys=keys, args=[cursor, SCAN_COUNT, CHUNK, f"{key}:chunk:", "1" if audience.split_language else "0",
                             "1" if audience.defer_to_digest else "0"])
        return str(cursor), int(claimed), int(claimed_en)

    def _chunk(self, item_id: str, item: dict[str, str], chunk: str, capped: bool,
               stop: threading.Event | None = None) -> str:
        if (stop is not None and stop.is_set()) or self.lost.is_set():
            return "stopped"
        key = self.kind.key(item_id)
        chunks = f"{key}:chunks"
        today = dt.datetime.now(JST).date().isoformat()
        retry_key = str(uuid.uuid5(RETRY_NAMESPACE, f"{item_id}:{chunk}"))
        # The first time: the cap applied and who receives it stored with its retry key;
        # on a resend, exactly what was stored. One round trip either way.
        prepared = self._prepare_script(
            keys=[chunks, f"{key}:chunk:{chunk}", f"{key}:sendto:{chunk}", key, daily_cap_key(today)],
            args=[chunk, item_id, self.cap if capped else 0, 2 * 24 * 3600, retry_key, f"{time.time():.3f}"])
        if not prepared:
            return "skip"
        retry_key, recipients = prepared[0], prepared[1:]
        if not recipients:
            self._finish(key, chunk, "done", ChunkResult(0, 0))
            return "done"
        result = self.kind.send(self, item_id, item, chunk, recipients, retry_key)
        if self.lost.is_set():
            return "stopped"  # the worker that took over finishes this chunk
        if result.monthly_limit:
            return "monthly_limit"
        if result.failed == 0:
            self._finish(key, chunk, "done", result)
            return "done"
        log.error("%s chunk %s: %d failed, status=%s", key, chunk, result.failed, result.status)
        self._finish(key, chunk, f"failed:{result.status}", result)
        return "failed"

    def _finish(self, key: str, chunk: str, state: str, result: ChunkResult) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(f"{key}:chunks", chunk, state)
        pipe.hincrby(key, "chunks_done", 1)
        pipe.hincrby(key, "sent", result.sent)
        pipe.hincrby(key, "failed", result.failed)
        for unit, count in result.units.items():
            pipe.incrby(f"{key}:delivered:{unit}", count)
        pipe.execute()

