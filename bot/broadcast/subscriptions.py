"""Who wants which alerts: topics x areas, as Redis sets per city.

Keys (the user id is needed here: alerts are multicast to these ids):
- `sub:<city>:user:<userId>`: hash {areas: "chuo,kita", topics: "fraud,safety"}
- `sub:<city>:area:<area>` and `sub:<city>:topic:<topic>`: sets of user ids;
  the area `all` means the whole city.
- `sub:<city>:lang:en`: residents who set up their alerts in English (they get an
  alert's English version when staff wrote one).
- `sub:<city>:digest`: residents who get non-urgent alerts once a day (bot.broadcast.digest).
Topics are a fixed list: DV, sexual violence and victim help are never topics
(docs/safety.md S1), so no code path can subscribe anyone to them. Everything
about a user is removed on unfollow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from bot.core.keys import sub_digest_key, sub_english_key, sub_set_key, sub_user_key

TOPICS = ("fraud", "suspicious", "missing", "emergency", "safety")
ALL_AREAS = "all"


@dataclass(frozen=True)
class Choice:
    areas: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


class Subscriptions:
    def __init__(self, client: redis.Redis, city: str) -> None:
        self.redis = client
        self.city = city

    def _user(self, user_id: str) -> str:
        return sub_user_key(self.city, user_id)

    def get(self, user_id: str) -> Choice:
        data = self.redis.hgetall(self._user(user_id))
        split = lambda v: tuple(x for x in (v or "").split(",") if x)  # noqa: E731
        return Choice(split(data.get("areas")), split(data.get("topics")))

    def set_areas(self, user_id: str, areas: Iterable[str]) -> Choice:
        return self._replace(user_id, areas=tuple(dict.fromkeys(areas)))

    def set_topics(self, user_id: str, topics: Iterable[str]) -> Choice:
        topics = tuple(dict.fromkeys(topics))
        unknown = [t for t in topics if t not in TOPICS]
        if unknown:
            raise ValueError(f"not a subscription topic: {unknown}")
        return self._replace(user_id, topics=topics)

    def toggle_topic(self, user_id: str, topic: str) -> Choice:
        current = self.get(user_id).topics
        wanted = tuple(t for t in current if t != topic) if topic in current else current + (topic,)
        return self.set_topics(user_id, wanted)

    def _replace(self, user_id: str, *, areas: tuple[str, ...] | None = None,
                 topics: tuple[str, ...] | None = None) -> Choice:
        old = self.get(user_id)
        new = Choice(old.areas if areas is None else areas, old.topics if topics is None else topics)
        pipe = self.redis.pipeline(transaction=True)
        for kind, before, after in (("area", old.areas, new.areas), ("topic", old.topics, new.topics)):
            for value in set(before) - set(after):
                pipe.srem(sub_set_key(self.city, kind, value), user_id)
            for value in set(after) - set(before):
                pipe.sadd(sub_set_key(self.city, kind, value), user_id)
        pipe.hset(self._user(user_id), mapping={"areas": ",".join(new.areas), "topics": ",".join(new.topics)})
        pipe.execute()
        return new

    def subscribed(self, user_ids: Sequence[str]) -> list[bool]:
        """Whether each of these residents still has alert settings (not unfollowed, not stopped)."""
        flags: list[bool] = []
        for start in range(0, len(user_ids), 1000):
            pipe = self.redis.pipeline(transaction=False)
            for user_id in user_ids[start:start + 1000]:
                pipe.exists(self._user(user_id))
            flags += [bool(n) for n in pipe.execute()]
        return flags

    def _flag(self, key: str, user_id: str, on: bool) -> None:
        if on:
            self.redis.sadd(key, user_id)
        else:
            self.redis.srem(key, user_id)

    def set_language(self, user_id: str, lang: str) -> None:
        """The language of the alert cards this resident gets: English or (anything else) Japanese."""
        self._flag(self.english_key, user_id, lang == "en")

    @property
    def english_key(self) -> str:
        return sub_english_key(self.city)

    @property
    def digest_key(self) -> str:
        return sub_digest_key(self.city)

    def set_digest(self, user_id: str, on: bool) -> None:
        """Non-urgent alerts once a day (on) or as they are sent. Alerts already held for
        today's digest stay there: switching never loses or doubles one."""
        self._flag(self.digest_key, user_id, on)

    def wants_digest(self, user_id: str) -> bool:
        return bool(self.redis.sismember(self.digest_key, user_id))

    def remove_user(self, user_id: str) -> None:
        old = self.get(user_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(self.english_key, user_id)
        pipe.srem(self.digest_key, user_id)
        for area in old.areas:
            pipe.srem(sub_set_key(self.city, "area", area), user_id)
        for topic in old.topics:
            pipe.srem(sub_set_key(self.city, "topic", topic), user_id)
        pipe.delete(self._user(user_id))
        pipe.execute()
