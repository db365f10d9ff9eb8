"""LINE webhook events -> dialogue -> replies. One event's failure never drops the others.

The webhook blueprint verifies the signature and hands the raw event dicts here.
Each event is parsed with line-bot-sdk's models on its own, deduplicated on
`webhookEventId`, and answered through the outbox with its reply token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from linebot.v3.webhooks import (
    Event,
    EventMode,
    FollowEvent,
    MessageEvent,
    PostbackEvent,
    TextMessageContent,
    UnfollowEvent,
    UnsendEvent,
)
from pydantic.v1 import ValidationError as SdkValidationError

from bot.conversation.dialogue import Dialogue
from bot.conversation.outbox import Outbox
from bot.conversation.state import ConversationStore
from bot.conversation.turn import PostbackInput, TextInput, Turn
from bot.core.keys import webhook_event_key

log = logging.getLogger(__name__)
DEDUPE_TTL_SECONDS = 48 * 3600  # LINE asks for at least 24 h


@dataclass
class EventStats:
    handled: int = 0
    duplicates: int = 0
    standby: int = 0
    ignored: int = 0
    failed: int = 0


class EventHandler:
    def __init__(self, dialogue: Dialogue, store: ConversationStore, client: redis.Redis, outbox: Outbox) -> None:
        self.dialogue = dialogue
        self.store = store
        self.redis = client
        self.outbox = outbox

    def handle_all(self, raw_events: Iterable[Any]) -> EventStats:
        stats = EventStats()
        for raw in raw_events:
            try:
                outcome = self.handle(raw)
            except Exception:  # one bad event must not drop the others
                log.exception("event failed")
                outcome = "failed"
            setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats

    def handle(self, raw: Any) -> str:
        try:
            event = Event.from_dict(raw)
        except ValueError:
            log.info("ignoring unknown event type")
            return "ignored"
        except (SdkValidationError, TypeError, KeyError, AttributeError):
            log.warning("ignoring malformed event")
            return "ignored"
        if event is None:
            return "ignored"
        if event.mode == EventMode.STANDBY:
            # Another channel owns the conversation: record nothing, send nothing.
            return "standby"
        if not self._first_delivery(event.webhook_event_id):
            log.info("duplicate webhook event skipped")
            return "duplicates"

        user_id = getattr(event.source, "user_id", None) if event.source else None
        if isinstance(event, UnfollowEvent):
            if user_id:
                self.dialogue.forget(user_id)
            return "handled"
        if isinstance(event, UnsendEvent):
            self.store.forget_message(event.unsend.message_id)
            return "handled"
        reply_token = getattr(event, "reply_token", None)
        if not user_id or not reply_token:
            return "ignored"  # groups and rooms are not a target of this bot

        turn = self._turn(event, user_id)
        if turn is None:
            return "ignored"
        self.outbox.reply(reply_token, turn.wire_messages(), user_id=user_id, sensitive=turn.sensitive)
        return "handled"

    def _turn(self, event: Event, user_id: str) -> Turn | None:
        if isinstance(event, MessageEvent):
            if isinstance(event.message, TextMessageContent):
                return self.dialogue.respond(user_id, TextInput(event.message.text))
            # Stickers, images, audio, location...: never downloaded; a pointer to the menu.
            return self.dialogue.non_text(user_id)
        if isinstance(event, PostbackEvent):
            return self.dialogue.respond(user_id, PostbackInput(event.postback.data or ""))
        if isinstance(event, FollowEvent):
            return self.dialogue.welcome(user_id)
        return None

    def _first_delivery(self, event_id: str) -> bool:
        try:
            return bool(self.redis.set(webhook_event_key(event_id), 1, nx=True, ex=DEDUPE_TTL_SECONDS))
        except redis.RedisError:
            # Without Redis we cannot deduplicate; answering twice beats not answering.
            return True
