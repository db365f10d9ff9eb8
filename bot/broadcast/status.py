"""How a delivery is doing, for staff (API, CLI): read-only."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from bot.core.clock import JST
from bot.core.keys import alert_key, digest_key, lease_key


@dataclass(frozen=True)
class AlertStatus:
    id: str
    state: str
    topic: str
    areas: list[str]
    title: str
    recipients: int | None
    sent: int
    failed: int
    capped: int
    chunks_total: int | None
    chunks_done: int
    eta_seconds: float | None
    stalled: bool
    error: str | None
    scheduled_for: str | None = None  # ISO time (JST) when quiet hours held the alert back
    deferred: int = 0  # residents who chose the daily digest: they get it there (bot.broadcast.digest)
    digest_at: str | None = None  # ISO time (JST) of that digest

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def alert_status(client: redis.Redis, alert_id: str, rate_per_second: float) -> AlertStatus | None:
    data = cast("dict[str, str]", client.hgetall(alert_key(alert_id)))  # the client decodes responses: str, not bytes
    if not data:
        return None
    integer = lambda k: int(data[k]) if data.get(k) not in (None, "") else None  # noqa: E731
    total, done = integer("chunks_total"), integer("chunks_done") or 0
    state = data.get("state", "queued")
    eta = scheduled = None
    if state in ("queued", "sending"):
        # While recipients are still being claimed, the chunks claimed so far are a lower bound.
        known = total if total is not None else (integer("claimed") or 0) + (integer("claimed_en") or 0)
        eta = math.ceil(max(0, known - done) / rate_per_second * 10) / 10
        if state == "queued" and data.get("not_before"):
            release = dt.datetime.fromtimestamp(int(data["not_before"]), JST)
            scheduled = release.isoformat()
            eta += max(0.0, round(release.timestamp() - time.time(), 1))
    # Visible when a job is meant to run but no worker holds its lease.
    stalled = state == "sending" and not client.exists(lease_key(alert_key(alert_id)))
    return AlertStatus(alert_id, state, data["topic"], data["areas"].split(","), data["title"], integer("recipients"),
                       integer("sent") or 0, integer("failed") or 0, integer("capped") or 0, total, done, eta,
                       stalled, data.get("error"), scheduled, integer("deferred") or 0,
                       dt.datetime.fromtimestamp(int(data["digest_at"]), JST).isoformat()
                       if data.get("digest_at") else None)


def digest_status(client: redis.Redis, city_id: str, day: str, rate_per_second: float) -> dict | None:
    """One day's digest for staff: its state, the alerts in it, and each group's delivery."""
    key = digest_key(city_id, day)
    alert_ids = client.lrange(f"{key}:alerts", 0, -1)
    info = client.hgetall(key)
    if not alert_ids and not info:
        return None
    group_ids = cast("list[str]", client.lrange(f"{key}:groups", 0, -1))  # the client decodes responses: str, not bytes
    groups = [alert_status(client, g, rate_per_second) for g in group_ids]
    return {"city": city_id, "day": day, "state": info.get("state", "open"), "alerts": alert_ids,
            "scheduled": bool(client.exists(f"{key}:scheduled")), "residents": int(info.get("residents") or 0),
            "groups": [g.as_dict() for g in groups if g is not None]}
