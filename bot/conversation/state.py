"""Short conversation state in Redis, and nothing the resident wrote.

Per user (keyed by a salted hash of the LINE user id, never the id itself):
- `conv:<h>` (hash, TTL 30 min; 20 min after a sensitive answer): the last
  intent as an opaque code (never "dv"), pending 「もしかして」 codes, whether the
  talk-history notice was shown. Deleted on 「画面を切り替える」 and unfollow.
- `pref:<h>` (hash, no TTL): the chosen language. Deleted on unfollow.
- `stats:intent:<intent>:<yyyy-mm-dd>`: counters without any user id (docs/safety.md §3).

If Redis is unreachable the bot keeps answering without memory: every method
logs the failure (never the user id) and returns the empty state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from bot.core.clock import JST
from bot.core.keys import conversation_key, intent_count_key, message_key, preference_key

log = logging.getLogger(__name__)
STATS_TTL_SECONDS = 400 * 24 * 3600


def _stats_key(intent: str, today: dt.date | None = None) -> str:
    # the day in Japan, like everything else the bot counts (not the server's clock zone)
    return intent_count_key(intent, (today or dt.datetime.now(JST).date()).isoformat())


@dataclass(frozen=True)
class ConvState:
    last_intent: str | None = None
    pending: tuple[str, ...] = ()
    notice_shown: bool = False
    lang: str | None = None
    free_text_for: str | None = None  # a campaign whose optional free-text answer is awaited
    # The language the resident has been writing in (no choice made): buttons tapped later
    # answer in it, as do loanwords (「SOS」) that say nothing about the language.
    seen_lang: str | None = None
    # The answer given when it was not the intent's own (the 119-first emergency answer):
    # 「電話番号は？」 afterwards lists its numbers in its order.
    last_answer: str | None = None


class ConversationStore:
    def __init__(self, client: redis.Redis, intent_ids: Iterable[str], *, salt: str,
                 ttl: int = 1800, sensitive_ttl: int = 1200) -> None:
        self.client = client
        self.salt = salt.encode()
        self.ttl = ttl
        self.sensitive_ttl = sensitive_ttl
        # Opaque, stable codes: a Redis dump shows "i3f9a1c", not the topic.
        self._code = {i: "i" + hashlib.sha256(self.salt + i.encode()).hexdigest()[:6] for i in intent_ids}
        self._intent = {c: i for i, c in self._code.items()}
        self.degraded = False

    def _key(self, kind: str, user_id: str) -> str:
        digest = hmac.new(self.salt, user_id.encode(), hashlib.sha256).hexdigest()[:32]
        return conversation_key(digest) if kind == "conv" else preference_key(digest)

    def _safe(self, what: str, fn, default):  # noqa: ANN001 - small internal helper
        try:
            result = fn()
            self.degraded = False
            return result
        except redis.RedisError as exc:
            self.degraded = True
            log.warning("redis unavailable during %s: %s", what, type(exc).__name__)
            return default

    def get(self, user_id: str) -> ConvState:
        def read() -> ConvState:
            pipe = self.client.pipeline()
            pipe.hgetall(self._key("conv", user_id))
            pipe.hget(self._key("pref", user_id), "lang")
            conv, lang = pipe.execute()
            pending = tuple(self._intent[c] for c in conv.get("p", "").split(",") if c in self._intent)
            return ConvState(
                last_intent=self._intent.get(conv.get("i", "")),
                pending=pending,
                notice_shown=conv.get("n") == "1",
                lang=lang,
                free_text_for=conv.get("f") or None,
                seen_lang=conv.get("l") or None,
                last_answer=self._intent.get(conv.get("a", "")),
            )

        return self._safe("get", read, ConvState())

    def remember_answer(self, user_id: str, intent: str, *, sensitive: bool, notice_shown: bool,
                        today: dt.date | None = None, lang: str | None = None,
                        answer: str | None = None) -> None:
        """The last intent (opaque), and the day's counter for it (no user id), in one round trip."""
        key = self._key("conv", user_id)
        stats = _stats_key(intent, today)

        def write() -> None:
            pipe = self.client.pipeline()
            pipe.hset(key, mapping={"i": self._code[intent], "p": ""})
            if notice_shown:
                pipe.hset(key, "n", "1")
            if answer in self._code:
                pipe.hset(key, "a", self._code[answer])
            else:
                pipe.hdel(key, "a")
            if lang == "ja":
                pipe.hdel(key, "l")
            elif lang:
                pipe.hset(key, "l", lang)
            pipe.expire(key, self.sensitive_ttl if sensitive else self.ttl)
            pipe.incr(stats)
            pipe.expire(stats, STATS_TTL_SECONDS)
            pipe.execute()

        self._safe("remember_answer", write, None)

    def remember_pending(self, user_id: str, intents: Iterable[str]) -> None:
        key = self._key("conv", user_id)

        def write() -> None:
            pipe = self.client.pipeline()
            pipe.hset(key, "p", ",".join(self._code[i] for i in intents))
            # The shorter TTL: never extend the life of a sensitive answer's state.
            pipe.expire(key, min(self.ttl, self.sensitive_ttl))
            pipe.execute()

        self._safe("remember_pending", write, None)

    def await_free_text(self, user_id: str, campaign_id: str | None) -> None:
        """Remember (or forget) that the next message answers a campaign's free-text question."""
        key = self._key("conv", user_id)

        def write() -> None:
            pipe = self.client.pipeline()
            if campaign_id:
                pipe.hset(key, "f", campaign_id)
                pipe.expire(key, min(self.ttl, self.sensitive_ttl))
            else:
                pipe.hdel(key, "f")
            pipe.execute()

        self._safe("await_free_text", write, None)

    def forget_conversation(self, user_id: str) -> None:
        self._safe("forget_conversation", lambda: self.client.delete(self._key("conv", user_id)), None)

    def forget_user(self, user_id: str) -> None:
        """Everything stored about this user (unfollow)."""
        self._safe("forget_user", lambda: self.client.delete(self._key("conv", user_id),
                                                             self._key("pref", user_id)), None)

    def forget_message(self, message_id: str) -> None:
        """LINE `unsend`: delete anything stored about that message. Nothing is keyed by
        message id today; this keeps the promise if anything ever is."""
        self._safe("forget_message", lambda: self.client.delete(message_key(message_id)), None)

    def set_lang(self, user_id: str, lang: str) -> None:
        self._safe("set_lang", lambda: self.client.hset(self._key("pref", user_id), "lang", lang), None)

