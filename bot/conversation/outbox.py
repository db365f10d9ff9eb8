"""Outgoing replies, sent off the request thread so the webhook answers LINE at once.

A reply whose token has expired falls back to a push with a retry key, except
for sensitive answers (docs/safety.md S1): a push raises a notification the
abuser may see, so for those nothing is sent and the resident gets the answer
when they ask again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from linebot.v3.messaging import Message

from bot.line.api import LineApi
from bot.line.sending import SendResult

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, api: LineApi, threads: int = 8, *, synchronous: bool = False) -> None:
        self.api = api
        self.synchronous = synchronous
        self._pool = None if synchronous else ThreadPoolExecutor(threads, thread_name_prefix="line-send")
        self._pending: set[Future] = set()
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def reply(self, reply_token: str, messages: Sequence[Message | dict], *, user_id: str, sensitive: bool) -> None:
        if self._pool is None:
            self._deliver(reply_token, messages, user_id, sensitive)
            return
        future = self._pool.submit(self._deliver, reply_token, messages, user_id, sensitive)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, reply_token: str, messages: Sequence[Message | dict], user_id: str,
                 sensitive: bool) -> SendResult:
        result = self.api.reply(reply_token, messages)
        if result.invalid_reply_token and not sensitive:
            result = self.api.push(user_id, messages)
        elif result.invalid_reply_token:
            log.info("reply token expired on a sensitive answer: nothing pushed (S1)")
        with self._lock:
            if result.ok:
                self.sent += 1
            else:
                self.failed += 1
        return result

    def drain(self, timeout: float = 10.0) -> None:
        """Wait for every queued send (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
