"""Alerts (and digest groups) on the broadcast engine: one multicast per chunk, a Japanese
and an English stream, the daily cap, and residents who chose the digest set aside."""

from __future__ import annotations

import datetime as dt
import json
import logging

import redis

from bot.broadcast.engine import Audience, ChunkResult, Engine
from bot.broadcast.queue import schedule_digest
from bot.broadcast.subscriptions import ALL_AREAS
from bot.core.clock import JST
from bot.core.keys import ALERTS_ACTIVE, alert_key, sub_set_key
from bot.line.api import LineApi
from bot.line.sending import send_with_retries
from bot.settings import Settings

log = logging.getLogger(__name__)
UNCAPPED_TOPICS = {"emergency", "digest"}  # a digest is one message a day (bot.broadcast.digest)


class AlertKind:
    active = ALERTS_ACTIVE

    def __init__(self) -> None:
        # an item's messages, parsed once per run rather than once per chunk (2,000 for 1M)
        self._messages: dict[tuple[str, str], list[dict]] = {}

    def key(self, item_id: str) -> str:
        return alert_key(item_id)

    def ready(self, engine: Engine, item_id: str, item: dict[str, str]) -> str | None:
        return None  # quiet hours hold an alert back in RQ's scheduler (its `not_before`)

    def audience(self, engine: Engine, item_id: str, item: dict[str, str]) -> Audience:
        split, defer = bool(item.get("message_en")), bool(item.get("digest_at"))
        if item.get("target"):  # a delivery to a set of its own (a digest group): everyone in it
            return Audience(item["target"], [item["target"]], split, defer)
        city, areas = item["city"], set(item["areas"].split(","))
        # A ward alert reaches that ward's subscribers and those who chose the whole city;
        # a whole-city alert reaches every area's subscribers.
        wanted = set(item["city_areas"].split(",")) if ALL_AREAS in areas else areas | {ALL_AREAS}
        return Audience(sub_set_key(city, "topic", item["topic"]),
                        [sub_set_key(city, "area", a) for a in sorted(wanted)], split, defer)

    def capped(self, item: dict[str, str]) -> bool:
        return item["topic"] not in UNCAPPED_TOPICS

    def send(self, engine: Engine, item_id: str, item: dict[str, str], chunk: str, recipients: list[str],
             retry_key: str) -> ChunkResult:
        # Chunk ids: "0", "1", ... (Japanese) and "en:0", ... (the English version, if written).
        field = "message_en" if chunk.startswith("en:") else "message"
        messages = self._messages.get((item_id, field))
        if messages is None:
            messages = self._messages[(item_id, field)] = [json.loads(item[field])]
        result = send_with_retries(lambda: engine.api.multicast(recipients, messages, retry_key),
                                   engine.multicast_limiter)
        if result.monthly_limit:
            return ChunkResult(0, 0, monthly_limit=True)
        if result.ok:
            return ChunkResult(len(recipients), 0)
        log.error("alert %s chunk %s failed: status=%s request_id=%s", item_id, chunk, result.status,
                  result.request_id)
        return ChunkResult(0, len(recipients), status=result.status)

    def leftovers(self, item_id: str, chunks: list[str]) -> list[str]:
        return []

    def finished(self, engine: Engine, item_id: str, item: dict[str, str]) -> None:
        if item.get("digest_at") and int(item.get("deferred") or 0) and engine.redis_url:
            slot = dt.datetime.fromtimestamp(int(item["digest_at"]), JST)
            schedule_digest(engine.redis_url, item["city"], slot)

    def close(self) -> None:
        self._messages.clear()


class AlertDelivery(Engine):
    """The engine for alerts: `AlertDelivery(client, api, settings).run(alert_id)`."""

    def __init__(self, client: redis.Redis, api: LineApi, settings: Settings) -> None:
        super().__init__(client, api, settings, AlertKind())
