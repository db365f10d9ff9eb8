"""The optional daily digest: non-urgent alerts once a day, as one message
(docs/alerts.md §3.4: too many alerts made residents cancel altogether).

- A city's `digest` (city.yaml) names the time and the topics; `emergency` and
  `missing` never wait. Residents choose it in their alert settings.
- An alert on a digest topic belongs to one day's digest, fixed when it is created
  (the first digest time after it may go out). While it is delivered, the claim step
  (bot.broadcast.engine) sets aside the residents who chose the digest into the alert's
  `deferred` set instead of messaging them; switching mode later never loses or
  doubles an alert already claimed.
- At digest time a job waits until every alert of the day has finished, groups the
  deferred residents by the alerts they are owed, and sends each group one carousel of
  those alert cards through the same delivery engine (chunks, retry keys, resume).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, cast

import redis

from bot.broadcast.alert_delivery import AlertDelivery
from bot.broadcast.queue import queue_job
from bot.broadcast.scripts import REGISTER
from bot.broadcast.subscriptions import Subscriptions
from bot.content.schema import Digest, Text
from bot.core.clock import JST, next_at
from bot.core.keys import ALERTS_ACTIVE, alert_key, digest_key

if TYPE_CHECKING:
    from bot.line.api import LineApi
    from bot.settings import Settings

log = logging.getLogger(__name__)
TOPIC = "digest"  # the topic of a digest delivery (never capped: it is one message a day)
MAX_CARDS = 12  # LINE's carousel limit
RETRY_SECONDS = 30  # while an alert of the day is still being delivered


def next_slot(digest: Digest, after: dt.datetime) -> dt.datetime:
    """The first digest time (JST) at or after `after`."""
    return next_at(digest.time, after)


def register(client: redis.Redis, city_id: str, alert_id: str, digest: Digest, base: dt.datetime,
             title: Text) -> dt.datetime:
    """Put an alert into the digest it belongs to; returns that digest's time."""
    slot = next_slot(digest, base)
    script = client.register_script(REGISTER)
    while True:
        day = slot.date().isoformat()
        if script(keys=[digest_key(city_id, day), f"{digest_key(city_id, day)}:alerts"],
                  args=[alert_id, title.ja, title.get("en")]):
            return slot
        slot += dt.timedelta(days=1)  # that day's digest is already being put together


def carousel(cards: list[dict], title: str) -> dict:
    """One message: the day's alert cards side by side; the preview says only how many."""
    bubbles = [card["contents"] for card in cards[:MAX_CARDS]]
    return {"type": "flex", "altText": f"{title} ({len(cards)})",
            "contents": {"type": "carousel", "contents": bubbles}}


class DigestDelivery:
    """One day's digest for one city: wait for the day's alerts, group, deliver."""

    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings) -> None:

        self.redis = client
        self.settings = settings
        self.engine = AlertDelivery(client, api, settings)

    def run(self, item: str) -> str:

        city_id, day = item.split(":", 1)
        key = digest_key(city_id, day)
        # Closed: alerts created from now on join the next day's digest.
        self.redis.hsetnx(key, "state", "closed")
        # the client decodes responses: str, not bytes
        alert_ids = cast("list[str]", self.redis.lrange(f"{key}:alerts", 0, -1))
        if self.redis.hget(key, "state") == "closed":
            # Only "done" is finished: an alert stopped by LINE's monthly limit resumes later
            # and may still set residents aside for this digest (which could not go out either).
            # A cancelled alert never started, so it set nobody aside.
            unfinished = [a for a in alert_ids if self.redis.hget(alert_key(a), "state") not in ("done", "cancelled")]
            if unfinished:
                self._retry_later(city_id, day)
                return f"waiting for {len(unfinished)} alert(s) of the day"
            lease = f"{key}:lease"
            if not self.redis.set(lease, uuid.uuid4().hex, nx=True, px=60_000):
                return "another worker is putting this digest together"
            try:
                self._group(city_id, day, alert_ids)
            finally:
                self.redis.delete(lease)
        # the client decodes responses: str, not bytes
        groups = cast("list[str]", self.redis.lrange(f"{key}:groups", 0, -1))
        results = [self.engine.run(group) for group in groups]
        if all(r == "done" for r in results):
            self.redis.hset(key, "state", "done")
            if groups:  # who was in which group is not kept once all are sent
                self.redis.unlink(*(f"{alert_key(g)}:to" for g in groups))
        return f"{len(results)} group(s): " + ", ".join(results) if results else "nothing deferred"

    def _retry_later(self, city_id: str, day: str) -> None:

        queue_job(self.settings.redis_url or "", "deliver_digest", city_id, day, description=f"digest {city_id} {day}",
                  at=dt.datetime.now(JST) + dt.timedelta(seconds=RETRY_SECONDS))

    def _group(self, city_id: str, day: str, alert_ids: list[str]) -> None:
        """Residents owed the same alerts form one group, sent one carousel (a delivery of
        its own: bot.broadcast.alert_delivery sends it like an alert, to the group's set)."""

        key = digest_key(city_id, day)
        owed: dict[str, set[str]] = defaultdict(set)
        for alert_id in alert_ids:
            for resident in self.redis.sscan_iter(f"{alert_key(alert_id)}:deferred", count=1000):
                owed[resident].add(alert_id)
        # Whoever unfollowed or stopped alerts since is owed nothing.
        residents = list(owed)
        for resident, subscribed in zip(residents, Subscriptions(self.redis, city_id).subscribed(residents)):
            if not subscribed:
                del owed[resident]
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for resident, owed_ids in owed.items():
            groups[tuple(a for a in alert_ids if a in owed_ids)].append(resident)
        # The client decodes responses (str, not bytes). register() stored both titles with the
        # day's first alert; every alert has its card, and its English one when staff wrote it.
        title, title_en = cast("list[str]", self.redis.hmget(key, "title", "title_en"))
        cards: dict[str, tuple[str, str | None]] = {}
        for a in alert_ids:
            message, message_en = self.redis.hmget(alert_key(a), "message", "message_en")
            cards[a] = cast(str, message), cast("str | None", message_en)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{key}:groups")
        for n, (ids, residents) in enumerate(sorted(groups.items())):
            group_id = f"digest-{city_id}-{day}-{n}"
            target = f"{alert_key(group_id)}:to"
            pipe.delete(alert_key(group_id), f"{alert_key(group_id)}:chunks", target)
            for start in range(0, len(residents), 5000):
                pipe.sadd(target, *residents[start:start + 5000])
            pipe.expire(target, 14 * 24 * 3600)
            ja = [json.loads(cards[a][0]) for a in ids]
            en = [json.loads(cards[a][1] or cards[a][0]) for a in ids]
            pipe.hset(alert_key(group_id), mapping={
                "city": city_id, "topic": TOPIC, "areas": "all", "title": f"{title} {day}",
                "target": target, "alerts": ",".join(ids),
                "message": json.dumps(carousel(ja, title), ensure_ascii=False),
                "message_en": json.dumps(carousel(en, title_en), ensure_ascii=False),
                "state": "queued", "created_at": f"{time.time():.3f}", "sent": 0, "failed": 0, "capped": 0,
                "chunks_done": 0})
            pipe.sadd(ALERTS_ACTIVE, group_id)
            pipe.rpush(f"{key}:groups", group_id)
        pipe.hset(key, mapping={"state": "grouped", "residents": len(owed), "groups": len(groups)})
        if alert_ids:  # the owed lists now live in the groups
            pipe.unlink(*(f"{alert_key(a)}:deferred" for a in alert_ids))
        pipe.execute()
        log.info("digest %s %s: %d resident(s) in %d group(s)", city_id, day, len(owed), len(groups))
