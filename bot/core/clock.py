"""City time: Japan Standard Time, and the daily windows and times content names ("21:00")."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def within(start: str, end: str, clock: str) -> bool:
    """Whether a clock time ("HH:MM", or "HH:MM:SS") falls in the daily window [start, end);
    a window that passes midnight (21:00-08:00) is the usual case for quiet hours."""
    if start > end:
        return start <= clock or clock < end
    return start <= clock < end


def next_at(clock: str, after: dt.datetime) -> dt.datetime:
    """The first time (JST) at or after `after` that the clock shows `clock` ("HH:MM")."""
    local = after.astimezone(JST)
    at = dt.time.fromisoformat(clock)
    moment = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return moment if moment >= local else moment + dt.timedelta(days=1)
