"""Builders for LINE-shaped webhook bodies and a running fake LINE API server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any

from werkzeug.serving import make_server

from bot.line.fake import FakeLine, create_fake_line_app

SECRET = "test-channel-secret"
ADMIN = "staff-token-for-tests"  # the staff API bearer token in tests
OLD_SECRET = "previous-channel-secret"
TOKEN = "test-access-token"
DESTINATION = "U" + "1" * 32
_ids = itertools.count(1)


def user(n: int) -> str:
    return f"U{n:032x}"


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def event(kind: str, user_id: str, *, reply_token: str | None = None, mode: str = "active",
          event_id: str | None = None, redelivery: bool = False, **fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": kind, "mode": mode, "timestamp": int(time.time() * 1000),
        "webhookEventId": event_id or f"01H{next(_ids):023d}",
        "deliveryContext": {"isRedelivery": redelivery},
        "source": {"type": "user", "userId": user_id},
    }
    if reply_token:
        ev["replyToken"] = reply_token
    ev.update(fields)
    return ev


def text_event(user_id: str, text: str, token: str | None, **kw: Any) -> dict[str, Any]:
    return event("message", user_id, reply_token=token, message={
        "type": "text", "id": str(next(_ids)), "text": text, "quoteToken": f"q{next(_ids)}"}, **kw)


def body_of(*events: dict[str, Any]) -> bytes:
    # ensure_ascii=False on purpose: LINE bodies carry raw Japanese and emoji
    return json.dumps({"destination": DESTINATION, "events": list(events)}, ensure_ascii=False).encode()


class FakeLineServer:
    """The fake LINE API on a real port, in a thread."""

    def __init__(self, fake: FakeLine | None = None) -> None:
        self.fake = fake or FakeLine(access_token=TOKEN)
        self.server = make_server("127.0.0.1", 0, create_fake_line_app(self.fake), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_with_line(runner, client, settings, item):  # noqa: ANN001, ANN201
    """Run a delivery job's body (Delivery, DigestDelivery, ...) in-process against the fake LINE API."""
    from bot.line.api import LineApi

    api = LineApi(settings, retries=0)
    try:
        return runner(client, api, settings).run(item)
    finally:
        api.close()


def residents_kept(client, pattern: str, residents) -> set[str]:  # noqa: ANN001
    """The residents whose id is still stored under any key matching `pattern`."""
    found: set[str] = set()
    wanted = set(residents)
    for key in client.scan_iter(pattern, count=1000):
        kind = client.type(key)
        values: list[str] = []
        if kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "hash":
            values = [f"{k} {v}" for k, v in client.hgetall(key).items()]
        elif kind == "string":
            values = [client.get(key)]
        found |= {r for r in wanted if any(r in v for v in values)}
    return found
