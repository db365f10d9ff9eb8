"""Calls to the LINE Messaging API through line-bot-sdk, with timeouts, retries and honest errors.

The SDK has no default timeout and no retry (docs/line-api.md §6.2), so every
call here sets `_request_timeout`, and sends that may be retried carry an
`X-Line-Retry-Key` from the first attempt. LINE errors are logged with their
request id and status, never with tokens or the resident's text, and never raise
into the webhook.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    Message,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
)
from urllib3.exceptions import HTTPError

if TYPE_CHECKING:
    from linebot.v3.insight import ApiClient as InsightApiClient

from bot.line.sending import RetryPolicy, SendResult, send_with_retries
from bot.settings import Settings

log = logging.getLogger(__name__)


class _Wire:
    """A message already in LINE's wire form.

    line-bot-sdk's request models serialise each message by calling its
    `to_dict()`; handing over the form computed once (bot.conversation.dialogue caches it per
    answer) saves re-serialising deep pydantic models on every send. The
    messages were built and validated as SDK models first."""

    __slots__ = ("_wire",)

    def __init__(self, wire: dict) -> None:
        self._wire = wire

    def to_dict(self) -> dict:
        return self._wire


def _prepared(messages: Sequence[Message | dict]) -> list[_Wire]:
    return [_Wire(m if isinstance(m, dict) else m.to_dict()) for m in messages]


class WireMulticast(MulticastRequest):
    """A multicast request that serialises without walking its recipients.

    The SDK turns a request into JSON with pydantic's `dict()`, which visits each of
    up to 500 user ids (a third of a delivery worker's CPU). The SDK's own form of
    the request without them, plus the plain list, is the same JSON (tested)."""

    def to_dict(self) -> dict:
        wire = MulticastRequest.construct(**{**self.__dict__, "to": []}).to_dict()
        wire["to"] = list(self.to)
        return wire


def access_token(settings: Settings) -> str:
    """The channel access token; in local mode (none set) a stand-in the fake LINE API accepts."""
    token = settings.line_channel_access_token
    return token.get_secret_value() if token else "local-mode-token"


def insight_client(settings: Settings) -> InsightApiClient:
    """line-bot-sdk's client for LINE's statistics (wrap it in `linebot.v3.insight.Insight`)."""
    # imported here: only the statistics fetch needs it, not the webhook or the senders
    from linebot.v3.insight import ApiClient
    from linebot.v3.insight import Configuration as InsightConfiguration

    return ApiClient(InsightConfiguration(host=settings.line_api_base_url, access_token=access_token(settings)))


class LineApi:
    def __init__(self, settings: Settings, *, retries: int = 3, backoff: float = 0.2) -> None:
        config = Configuration(host=settings.line_api_base_url, access_token=access_token(settings))
        # The SDK keeps cpu_count x 5 connections; at LINE's ~0.1 s per call, 150 requests/s
        # keep about 15 in flight, and each one over the pool's size would open (TLS) and
        # drop a connection. Room for every thread that may call at once:
        config.connection_pool_maxsize = max(settings.send_threads, settings.alert_send_concurrency)
        # One client per process (not per event): it holds the connection pool.
        self.client = ApiClient(config)
        self.api = MessagingApi(self.client)
        self.blob = MessagingApiBlob(self.client)
        self.timeout = settings.line_timeout_seconds
        self.policy = RetryPolicy(attempts=retries + 1, base=backoff, base_after_429=backoff)

    def close(self) -> None:
        self.client.close()

    def reply(self, reply_token: str, messages: Sequence[Message | dict]) -> SendResult:
        # Reply takes no retry key and a token works once: a single attempt. Its answer
        # (the sent message ids) is not needed: skipping the SDK's model for it saves 12%
        # of a reply's CPU (0.90 -> 0.79 ms against the fake LINE API).
        request = ReplyMessageRequest.construct(reply_token=reply_token, messages=_prepared(messages))
        return self._call("reply", lambda: self.api.reply_message_with_http_info(
            request, _request_timeout=self.timeout, _preload_content=False))

    def push(self, to: str, messages: Sequence[Message | dict], retry_key: str | None = None,
             units: Sequence[str] = ()) -> SendResult:
        """Push with a retry key; 5xx and timeouts are retried with the same key, 409 is success."""
        key = retry_key or str(uuid.uuid4())
        request = PushMessageRequest.construct(to=to, messages=_prepared(messages),
                                               custom_aggregation_units=list(units) or None)
        return self._retrying("push", lambda: self.api.push_message_with_http_info(
            request, x_line_retry_key=key, _request_timeout=self.timeout))

    def multicast(self, to: Sequence[str], messages: Sequence[Message | dict], retry_key: str,
                  units: Sequence[str] = ()) -> SendResult:
        """One attempt; the delivery engine owns retries (it must pace them with the rate limiter)."""
        request = WireMulticast.construct(to=list(to), messages=_prepared(messages),
                                          custom_aggregation_units=list(units) or None)
        return self._call("multicast", lambda: self.api.multicast_with_http_info(
            request, x_line_retry_key=retry_key, _request_timeout=self.timeout))

    def _retrying(self, name: str, call) -> SendResult:  # noqa: ANN001
        """The webhook's own retries (no shared limiter: a push fallback is one message)."""
        return send_with_retries(lambda: self._call(name, call), None, self.policy)

    def _call(self, name: str, call) -> SendResult:  # noqa: ANN001
        try:
            response = call()
            return SendResult(True, response.status_code, response.headers.get("x-line-request-id"))
        except ApiException as exc:
            headers = exc.headers or {}
            request_id = headers.get("x-line-request-id") or headers.get("X-Line-Request-Id")
            message = _error_message(exc.body)
            level = logging.INFO if exc.status == 409 else logging.WARNING
            log.log(level, "LINE %s failed: status=%s request_id=%s message=%s", name, exc.status,
                    request_id, message)
            return SendResult(False, exc.status or 0, request_id, message)
        except (HTTPError, OSError) as exc:
            log.warning("LINE %s failed without a response: %s", name, type(exc).__name__)
            return SendResult(False, 0, None, type(exc).__name__)


def _error_message(body: object) -> str | None:
    if not body:
        return None
    try:
        data = json.loads(body if isinstance(body, (str, bytes)) else str(body))
        return str(data.get("message")) if isinstance(data, dict) else None
    except ValueError:
        return None
