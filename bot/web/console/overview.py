"""The overview: who has subscribed (topic × ward), what is in flight, what waits for
approval, recent delivery errors, and desks whose facts are due for re-confirmation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from bot.broadcast.subscriptions import ALL_AREAS
from bot.core.clock import JST
from bot.core.keys import scratch_key, sub_set_key
from bot.staff import records
from bot.web.console.base import bp
from bot.web.staff_access import ctx

DESK_RECHECK_DAYS = 365


def subscriber_table(context: records.Context) -> dict[str, Any]:
    """Residents per topic × area (those who chose the whole city in its own column), in one pipeline. Counted
    in Redis (SINTERSTORE answers the size) rather than bringing every member over the wire."""
    config = context.city.config
    areas = [a.id for a in config.areas]  # the whole city ("all") is one of them
    scratch = scratch_key("overview", uuid.uuid4().hex)
    pipe = context.redis.pipeline(transaction=False)
    for topic in config.topics:
        for area in areas:
            pipe.sinterstore(scratch, [sub_set_key(context.city.id, "topic", topic.id),
                                       sub_set_key(context.city.id, "area", area)])
    pipe.delete(scratch)
    counts = iter(pipe.execute()[:-1])
    rows = [{"topic": t.label.get("ja"), "counts": [next(counts) for _ in areas]} for t in config.topics]
    labels = [a.label.get("ja") for a in config.areas]
    whole = next((a.label.get("ja") for a in config.areas if a.id == ALL_AREAS), "")
    return {"areas": labels, "rows": rows, "whole_city": whole}


def desks_due(context: records.Context, today: dt.date) -> list[Any]:
    limit = today - dt.timedelta(days=DESK_RECHECK_DAYS)
    return sorted((d for d in context.city.desks.values() if d.last_checked < limit), key=lambda d: d.last_checked)


@bp.get("/")
def overview() -> ResponseReturnValue:
    context = ctx()
    recent = records.history(context, limit=100)
    in_flight = [r for r in recent if r.state in records.IN_FLIGHT]
    waiting = [r for r in recent if r.state == "awaiting_approval"]
    errors = [r for r in recent if r.error or (r.failed or 0) > 0][:10]
    today = dt.datetime.now(JST).date()
    return render_template("admin/overview.html", subscribers=subscriber_table(context), in_flight=in_flight,
                           waiting=waiting, errors=errors, desks_due=desks_due(context, today),
                           rate=context.settings.alert_rate_per_second)
