"""LINE's webhook signature: base64(HMAC-SHA256(channel secret, the exact body bytes)).

`verify` checks a request with line-bot-sdk's SignatureValidator (a constant-time
hmac.compare_digest) against the current and, while rotating, the previous channel
secret. `sign` makes the header LINE would send: the local simulator and the tests
post through the same signed path as LINE.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from linebot.v3.webhook import SignatureValidator


def verify(body: bytes | str, signature: str, secrets: Sequence[str]) -> bool:
    """True when any non-empty secret validates `signature` over `body`.

    A missing, empty or garbled signature (not base64, not text) is simply False. LINE
    sends UTF-8 JSON; a body that is not UTF-8 cannot be LINE's and is False too (the SDK
    validates text, encoded as UTF-8, which gives back the exact bytes for any UTF-8 body).
    """
    if not isinstance(signature, str) or not signature:
        return False
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    elif isinstance(body, str):
        text = body
    else:
        return False
    for secret in secrets:
        if not secret:
            continue
        try:
            if SignatureValidator(secret).validate(text, signature):
                return True
        except (UnicodeError, TypeError, ValueError):  # characters no signature (or secret) has
            continue
    return False


def sign(body: bytes | str, secret: str) -> str:
    """The X-Line-Signature value LINE would send with `body` for this channel secret."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return base64.b64encode(hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).digest()).decode("ascii")
