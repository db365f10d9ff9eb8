"""One rate limit shared by every worker on every machine, kept in Redis.

GCRA (the generic cell rate algorithm): one key holds the theoretical arrival
time of the next request. A Lua script reserves the next slot atomically, so any
number of workers together stay under the rate (LINE: 200 multicast requests/s;
we default to 150 for headroom).
"""

from __future__ import annotations

import time

import redis

from bot.core.keys import rate_limit_key

# Reservation: every caller gets the next free slot and the time to wait for it, so
# waiting callers never race each other for the same slot (and never waste one).
# KEYS[1] = key; ARGV = now_ms, interval_ms, burst_ms. Returns whole ms to wait (>= 0).
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat - now + interval + burst + 1000))
local wait = tat - burst - now
if wait < 0 then return 0 end
return math.ceil(wait)
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, name: str, per_second: float, burst: int = 1) -> None:
        self.client = client
        self.key = rate_limit_key(name)
        self.interval_ms = 1000.0 / per_second
        # Up to `burst` requests may go back to back; the average never exceeds the rate.
        self.burst_ms = self.interval_ms * max(0, burst - 1)
        self._reserve = client.register_script(_RESERVE)

    def acquire(self) -> None:
        """Take the next slot (shared by every process on this Redis) and wait for it."""
        wait_s = self.reserve(1)
        if wait_s > 0:
            time.sleep(wait_s)

    def reserve(self, count: int) -> float:
        """Take the next `count` slots at once (one Redis call for a whole chunk of pushes):
        the seconds until the first; the others follow every `interval` seconds."""
        now_ms = time.time() * 1000.0
        return int(self._reserve(keys=[self.key], args=[now_ms, self.interval_ms * count, self.burst_ms])) / 1000.0

    @property
    def interval(self) -> float:
        return self.interval_ms / 1000.0
