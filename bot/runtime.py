"""Wire the parts together once per process: settings -> Redis, content, matcher, dialogue.

Every surface (CLI now; webhook, staff API and console later) gets its domain
objects from here, so none of them builds its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.broadcast.subscriptions import Subscriptions
from bot.content.loader import Catalog, load_catalog
from bot.conversation.dialogue import Dialogue
from bot.conversation.state import ConversationStore
from bot.core.redis_conn import RedisHandle, connect
from bot.settings import Settings
from bot.understanding.matcher import Matcher

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    matcher: Matcher
    redis: RedisHandle
    store: ConversationStore
    _dialogues: dict[str, Dialogue] = field(default_factory=dict)

    def dialogue(self, city: str | None = None) -> Dialogue:
        city = city or self.settings.city
        if city not in self._dialogues:
            subscriptions = Subscriptions(self.redis.client, city)
            self._dialogues[city] = Dialogue(self.catalog, city, self.matcher, self.store, subscriptions)
        return self._dialogues[city]

    def close(self) -> None:
        self.redis.close()


def build(settings: Settings, *, catalog: Catalog | None = None, matcher: Matcher | None = None) -> Runtime:
    """Load and validate content first (refuse to start on errors), then connect Redis.

    A caller that already holds a validated catalog (and its matcher) may pass them in.
    """
    catalog = catalog or load_catalog(settings.content_root)
    catalog.city(settings.city)  # unknown BOT_CITY fails here, at start-up
    matcher = matcher or Matcher(catalog, settings.model_cache_dir)
    handle = connect(settings.redis_url, settings.data_dir)
    store = ConversationStore(
        handle.client,
        # intents, and the crisis kinds' own answers (emergency_119) a follow-up must find again
        [i.id for i in catalog.intents] + [a for a in catalog.crisis_answers if a not in catalog.by_id],
        salt=settings.id_salt.get_secret_value(),
        ttl=settings.state_ttl_seconds,
        sensitive_ttl=settings.sensitive_state_ttl_seconds,
    )
    return Runtime(settings, catalog, matcher, handle, store)
