"""/dev/chat: a LINE-like talk screen for local mode (no LINE channel needed).

The page never calls the dialogue directly: each message or tap becomes a real
LINE webhook event, signed with the channel secret and posted to /callback, the
same path a request from LINE takes. The bot's replies go to the in-process
fake LINE API, and the page reads them back from there.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from bot.line.signature import sign

bp = Blueprint("simulator", __name__, url_prefix="/dev", template_folder="templates", static_folder="static")
DESTINATION = "U" + "0" * 32


def make_event(kind: str, user_id: str, reply_token: str | None, **fields: Any) -> dict[str, Any]:
    """A webhook event shaped exactly like LINE's (docs/line-api.md §7)."""
    event: dict[str, Any] = {
        "type": kind, "mode": "active", "timestamp": int(time.time() * 1000),
        "webhookEventId": uuid.uuid4().hex.upper()[:26], "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": user_id},
    }
    if reply_token:
        event["replyToken"] = reply_token
    event.update(fields)
    return event


@bp.get("/chat")
def chat_page():  # noqa: ANN201
    services = current_app.extensions["bot"]
    city = services.runtime.catalog.city(services.settings.city).config
    return render_template("chat.html", city=city.name.ja, user_id="U" + uuid.uuid4().hex)


@bp.post("/send")
def send():  # noqa: ANN201
    services = current_app.extensions["bot"]
    data = request.get_json(silent=True) or {}
    user_id = str(data.get("userId", ""))
    kind = data.get("type")
    if not (user_id.startswith("U") and len(user_id) == 33):
        return jsonify({"message": "userId must look like a LINE user id"}), 400
    token = services.fake_line.issue_reply_token(user_id)
    if kind == "text" and isinstance(data.get("text"), str) and data["text"].strip():
        event = make_event("message", user_id, token, message={
            "type": "text", "id": uuid.uuid4().hex[:18], "text": data["text"][:5000],
            "quoteToken": uuid.uuid4().hex})
    elif kind == "postback" and isinstance(data.get("data"), str):
        event = make_event("postback", user_id, token, postback={"data": data["data"][:300]})
    elif kind == "follow":
        event = make_event("follow", user_id, token, follow={"isUnblocked": False})
    elif kind == "sticker":
        event = make_event("message", user_id, token, message={
            "type": "sticker", "id": uuid.uuid4().hex[:18], "packageId": "446", "stickerId": "1988",
            "stickerResourceType": "STATIC", "quoteToken": uuid.uuid4().hex})
    else:
        return jsonify({"message": "type must be text, postback, follow or sticker"}), 400
    body = json.dumps({"destination": DESTINATION, "events": [event]}, ensure_ascii=False).encode()
    secret = services.secrets[0]
    # Through the real, signed webhook path, as LINE would call it.
    response = current_app.test_client().post(
        "/callback", data=body, headers={"X-Line-Signature": sign(body, secret), "Content-Type": "application/json"})
    services.outbox.drain()
    return jsonify({"status": response.status_code})


@bp.get("/messages")
def messages():  # noqa: ANN201
    services = current_app.extensions["bot"]
    user_id = request.args.get("userId", "")
    after = request.args.get("after", "0")
    rows = services.fake_line.messages_for(user_id, int(after) if after.isdigit() else 0)
    return jsonify({"messages": [{"seq": n, "message": m} for n, m in rows]})
