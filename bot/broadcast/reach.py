"""How many residents an alert or a campaign would reach now: shown to staff before they send.

Counted as delivery counts them (bot.broadcast.alert_delivery, campaign_delivery): subscribers
of the topic in the wards (those who chose the whole city included), less those the daily cap
stops today; residents who chose the daily digest are counted apart (they get it at digest time).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from bot.broadcast.alert_delivery import UNCAPPED_TOPICS
from bot.broadcast.subscriptions import ALL_AREAS
from bot.core.clock import JST
from bot.core.keys import daily_cap_key, scratch_key, sub_digest_key, sub_english_key, sub_set_key

BATCH = 1000


@dataclass(frozen=True)
class Reach:
    subscribers: int  # subscribed to the topic in those areas
    capped: int  # already sent the daily cap of alerts today: this one would skip them
    digest: int  # chose the daily digest: they get it there, not now
    english: int  # set up their alerts in English (they get the English version if written)

    @property
    def now(self) -> int:
        return self.subscribers - self.capped - self.digest

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "now": self.now}


def _members(client: redis.Redis, city: str, topics: Iterable[str], areas: Iterable[str],
             city_areas: list[str]) -> list[str]:
    area_set = set(areas)
    wanted = set(city_areas) if ALL_AREAS in area_set else area_set | {ALL_AREAS}
    token = uuid.uuid4().hex
    topic_key, area_key = scratch_key("reach-topics", token), scratch_key("reach-areas", token)
    pipe = client.pipeline(transaction=False)
    pipe.sunionstore(topic_key, [sub_set_key(city, "topic", t) for t in topics])
    pipe.sunionstore(area_key, [sub_set_key(city, "area", a) for a in sorted(wanted)])
    pipe.sinter([topic_key, area_key])
    pipe.delete(topic_key, area_key)
    return sorted(cast("set[str]", pipe.execute()[2]))  # the client decodes responses: str, not bytes


def _flagged(client: redis.Redis, key: str, members: list[str]) -> list[str]:
    """Those of `members` in the set `key` (English, digest), a batch per round trip."""
    out: list[str] = []
    for start in range(0, len(members), BATCH):
        batch = members[start:start + BATCH]
        out += [m for m, on in zip(batch, client.smismember(key, batch), strict=True) if on]
    return out


def alert_reach(client: redis.Redis, city: str, topic: str, areas: Iterable[str], city_areas: list[str],
                daily_cap: int, digest_topics: Iterable[str] = ()) -> Reach:
    members = _members(client, city, [topic], areas, city_areas)
    deferred = set(_flagged(client, sub_digest_key(city), members)) if topic in set(digest_topics) else set()
    capped = 0
    if daily_cap and topic not in UNCAPPED_TOPICS:
        today = dt.datetime.now(JST).date().isoformat()
        live = [m for m in members if m not in deferred]
        for start in range(0, len(live), BATCH):
            counted = client.hmget(daily_cap_key(today), live[start:start + BATCH])
            capped += sum(1 for seen in counted if seen and str(seen).count(",") + 1 >= daily_cap)
    return Reach(len(members), capped, len(deferred), len(_flagged(client, sub_english_key(city), members)))


def campaign_reach(client: redis.Redis, city: str, topics: Iterable[str], areas: Iterable[str],
                   city_areas: list[str]) -> Reach:
    members = _members(client, city, topics, areas, city_areas)
    return Reach(len(members), 0, 0, len(_flagged(client, sub_english_key(city), members)))
