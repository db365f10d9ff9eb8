"""One retry policy for every call to LINE that may be retried (docs/line-api.md).

- 200, and 409 for a retry key LINE has accepted already: delivered;
- 429 (rate), 5xx and no answer at all (timeout, connection lost): try again with the
  same retry key, backing off exponentially (longer after a 429: LINE says no more);
- the 429 of the monthly limit, and any other 4xx: stop (another try cannot succeed).
The webhook's push fallback, the broadcast engine and the bulk pusher all ask this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.line.ratelimit import RateLimiter

MONTHLY_LIMIT = "You have reached your monthly limit."


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int  # HTTP status; 0 when no response (timeout, connection refused)
    request_id: str | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def invalid_reply_token(self) -> bool:
        return self.status == 400 and (self.error or "").startswith("Invalid reply token")

    @property
    def monthly_limit(self) -> bool:
        return self.status == 429 and self.error == MONTHLY_LIMIT


Verdict = Literal["delivered", "retry", "stop"]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base: float = 0.1  # first wait after a 5xx or a lost answer (seconds), doubling
    base_after_429: float = 0.5
    cap: float = 30.0

    def verdict(self, result: SendResult) -> Verdict:
        if result.ok or result.status == 409:
            return "delivered"
        if result.monthly_limit:
            return "stop"
        return "retry" if result.status == 0 or result.status >= 500 or result.status == 429 else "stop"

    def delay(self, result: SendResult, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1, 2, ...)."""
        base = self.base_after_429 if result.status == 429 else self.base
        return min(self.cap, base * 2 ** (attempt - 1))


# Broadcasts: the shared limiter already paces everyone, so the first waits can be short.
BROADCAST = RetryPolicy()


def send_with_retries(call: Callable[[], SendResult], limiter: RateLimiter | None,
                      policy: RetryPolicy = BROADCAST) -> SendResult:
    """One request, each attempt paced by the shared limiter (if any) and retried as the policy
    says with the same retry key (inside `call`). The result says how many attempts it took."""
    result = SendResult(False, 0)
    for attempt in range(1, policy.attempts + 1):
        if limiter is not None:
            limiter.acquire()
        result = call()
        verdict = policy.verdict(result)
        if verdict != "retry":
            return SendResult(verdict == "delivered", result.status, result.request_id, result.error, attempt)
        time.sleep(policy.delay(result, attempt))
    return result
