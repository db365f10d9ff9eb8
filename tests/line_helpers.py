"""Builders for LINE-shaped webhook bodies, a resident posting signed events, and a running
fake LINE API server."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from werkzeug.serving import make_server

from bot.line import signature
from bot.line.fake import FakeLine, create_fake_line_app

SECRET = "test-channel-secret"
CONSOLE_KEY = "console-secret-key-for-tests-0123456789"  # BOT_SECRET_KEY in tests (32+ characters)
OLD_SECRET = "previous-channel-secret"
TOKEN = "test-access-token"
DESTINATION = "U" + "1" * 32
_ids = itertools.count(1)


def user(n: int) -> str:
    return f"U{n:032x}"


def sign(body: bytes, secret: str = SECRET) -> str:
    return signature.sign(body, secret)


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


class LineUser:
    """One resident talking to the bot as LINE would carry it: each event gets a reply token
    issued by the fake LINE API, is signed with the channel secret and posted to /callback.
    Each call checks the webhook answered 200 and returns the messages the fake LINE API
    received for this resident meanwhile (the reply, or the push that stood in for it)."""

    def __init__(self, client, line: FakeLineServer, user_id: str, secret: str = SECRET) -> None:  # noqa: ANN001
        self.client = client
        self.line = line
        self.user_id = user_id
        self.secret = secret

    def text(self, text: str, **kw: Any) -> list[dict[str, Any]]:
        return self.post(text_event(self.user_id, text, self._token(), **kw))

    def postback(self, data: str, **kw: Any) -> list[dict[str, Any]]:
        return self.post(event("postback", self.user_id, reply_token=self._token(), postback={"data": data}, **kw))

    def follow(self, *, unblocked: bool = False, **kw: Any) -> list[dict[str, Any]]:
        return self.post(event("follow", self.user_id, reply_token=self._token(),
                               follow={"isUnblocked": unblocked}, **kw))

    def post(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        seen = self.line.fake.messages_for(self.user_id)
        after = seen[-1][0] if seen else 0
        raw = body_of(ev)
        response = self.client.post("/callback", data=raw, headers={
            "X-Line-Signature": sign(raw, self.secret), "Content-Type": "application/json"})
        assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
        return [m for _, m in self.line.fake.messages_for(self.user_id, after)]

    def _token(self) -> str:
        return self.line.fake.issue_reply_token(self.user_id)


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
