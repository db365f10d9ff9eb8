"""Many pushes at once: one per resident (a campaign's tracked links), hundreds in flight.

LINE answers a push in about 0.1 s and allows 2,000 pushes a second, so reaching even
1,000 a second needs a hundred requests waiting at once. Threads with line-bot-sdk's
client cost 1.3 ms of CPU per push here and its asyncio client 2.3 ms (its argument
validation and models); aiohttp itself, on one event loop, costs about 0.6 ms. So this
sends the very request the SDK would (docs/line-api.md: the push endpoint, bearer token,
X-Line-Retry-Key, customAggregationUnits) with aiohttp, and keeps the SDK for everything
else. The same retry policy as every other send (bot.line.sending), and the shared Redis
rate limiter paces every attempt (a whole chunk's slots are reserved in one call, then
spaced by the limiter's interval).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from bot.line.api import access_token
from bot.line.ratelimit import RateLimiter
from bot.line.sending import BROADCAST, SendResult
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Push:
    to: str
    messages: str  # the messages array, already in LINE's wire form (JSON text)
    retry_key: str
    units: Sequence[str] = ()

    def body(self) -> bytes:
        units = f',"customAggregationUnits":{json.dumps(list(self.units))}' if self.units else ""
        return f'{{"to":{json.dumps(self.to)},"messages":{self.messages}{units}}}'.encode()


class BulkPusher:
    """An event loop on a thread of its own; `send` is called from any thread and blocks."""

    def __init__(self, settings: Settings, lanes: int) -> None:
        self.headers = {"Authorization": f"Bearer {access_token(settings)}",
                        "Content-Type": "application/json"}
        self.url = f"{settings.line_api_base_url}/v2/bot/message/push"
        self.timeout = settings.line_timeout_seconds
        self.lanes = lanes
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bulk-push", daemon=True)
        self.thread.start()
        self.session: aiohttp.ClientSession = asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()

    async def _open(self) -> aiohttp.ClientSession:
        self.gate = asyncio.Semaphore(self.lanes)
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.lanes),
                                     timeout=aiohttp.ClientTimeout(total=self.timeout))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def send(self, pushes: Sequence[Push], limiter: RateLimiter, stop: threading.Event | None = None
             ) -> list[SendResult]:
        """Send every push (paced by `limiter`, retried as above); results in the same order.
        Once `stop` is set, pushes not yet sent are left unsent (status 0)."""
        return asyncio.run_coroutine_threadsafe(self._send_all(pushes, limiter, stop), self.loop).result()

    async def _send_all(self, pushes: Sequence[Push], limiter: RateLimiter,
                        stop: threading.Event | None) -> list[SendResult]:
        loop = asyncio.get_running_loop()
        first = loop.time() + await loop.run_in_executor(None, limiter.reserve, len(pushes))
        return list(await asyncio.gather(*(self._one(push, first + n * limiter.interval, limiter, stop)
                                           for n, push in enumerate(pushes))))

    async def _one(self, push: Push, at: float, limiter: RateLimiter, stop: threading.Event | None) -> SendResult:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, at - loop.time()))
        body = push.body()
        headers = {**self.headers, "X-Line-Retry-Key": push.retry_key}
        result = SendResult(False, 0)
        for attempt in range(1, BROADCAST.attempts + 1):
            if stop is not None and stop.is_set():
                return SendResult(False, 0, None, "stopped", attempt)
            if attempt > 1:  # a retry takes a slot of its own
                await asyncio.sleep(await loop.run_in_executor(None, limiter.reserve, 1))
            async with self.gate:  # a lane is held for the whole call, LINE's answer time included
                result = await self._post(body, headers)
            verdict = BROADCAST.verdict(result)
            if verdict == "delivered":
                return SendResult(True, result.status, result.request_id, None, attempt)
            if verdict == "stop":
                return result
            await asyncio.sleep(BROADCAST.delay(result, attempt))
        return result

    async def _post(self, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            async with self.session.post(self.url, data=body, headers=headers) as response:
                request_id = response.headers.get("X-Line-Request-Id")
                if response.status == 200:
                    await response.read()
                    return SendResult(True, 200, request_id)
                message = _message(await response.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("LINE push failed without a response: %s", type(exc).__name__)
            return SendResult(False, 0, None, type(exc).__name__)
        level = logging.INFO if response.status == 409 else logging.WARNING
        log.log(level, "LINE push failed: status=%s request_id=%s message=%s", response.status, request_id, message)
        return SendResult(False, response.status, request_id, message)


def _message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get("message")) if isinstance(data, dict) else None


