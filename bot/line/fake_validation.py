"""The fake LINE API's checks of message objects against LINE's limits (what makes a 400 body).

Each check returns LINE's error details, {"message", "property"}, an empty list when the
object is valid; the server in `bot.line.fake` turns them into the 400 response.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _detail(prop: str, message: str) -> dict[str, str]:
    return {"message": message, "property": prop}


def _validate_text(value: Any, prop: str, limit: int, length: Callable[[str], int]) -> list[dict[str, str]]:
    """A required, non-empty string of at most `limit`, as `length` counts (text: UTF-16 units; altText: len)."""
    if not isinstance(value, str) or not value:
        return [_detail(prop, "Must be specified")]
    if length(value) > limit:
        return [_detail(prop, f"Length must be between 0 and {limit}")]
    return []


def validate_messages(messages: Any) -> list[dict[str, str]]:
    details: list[dict[str, str]] = []
    if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
        return [_detail("messages", "Size must be between 1 and 5")]
    for n, msg in enumerate(messages):
        p = f"messages[{n}]"
        if not isinstance(msg, dict) or "type" not in msg:
            details.append(_detail(f"{p}.type", "Must be specified"))
            continue
        kind = msg["type"]
        if kind == "text":
            details += _validate_text(msg.get("text"), f"{p}.text", 5000, _utf16_len)
        elif kind == "flex":
            details += _validate_text(msg.get("altText"), f"{p}.altText", 1500, len)
            details += _validate_flex(msg.get("contents"), f"{p}.contents")
        elif kind not in ("sticker", "image", "video", "audio", "location", "imagemap", "template"):
            details.append(_detail(f"{p}.type", f"Invalid message type: {kind}"))
        quick = msg.get("quickReply")
        if quick is not None:
            items = quick.get("items") if isinstance(quick, dict) else None
            if not isinstance(items, list) or not 1 <= len(items) <= 13:
                details.append(_detail(f"{p}.quickReply.items", "Size must be between 1 and 13"))
            else:
                for k, item in enumerate(items):
                    details += _validate_action(item.get("action") if isinstance(item, dict) else None,
                                                f"{p}.quickReply.items[{k}].action")
    return details


def _validate_action(action: Any, prop: str) -> list[dict[str, str]]:
    if not isinstance(action, dict) or "type" not in action:
        return [_detail(f"{prop}.type", "Must be specified")]
    details = []
    label = action.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > 20):
        details.append(_detail(f"{prop}.label", "Length must be between 0 and 20"))
    if action["type"] == "postback":
        data = action.get("data")
        if not isinstance(data, str) or not 1 <= len(data) <= 300:
            details.append(_detail(f"{prop}.data", "Length must be between 1 and 300"))
        display = action.get("displayText")
        if display is not None and (not isinstance(display, str) or len(display) > 300):
            details.append(_detail(f"{prop}.displayText", "Length must be between 1 and 300"))
    elif action["type"] == "uri":
        uri = action.get("uri")
        if not isinstance(uri, str) or not re.match(r"^(https?|tel|line):", uri) or len(uri) > 1000:
            details.append(_detail(f"{prop}.uri", "Invalid uri"))
    elif action["type"] == "message":
        text = action.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 300:
            details.append(_detail(f"{prop}.text", "Length must be between 1 and 300"))
    return details


def _validate_flex(contents: Any, prop: str) -> list[dict[str, str]]:
    if not isinstance(contents, dict) or contents.get("type") not in ("bubble", "carousel"):
        return [_detail(f"{prop}.type", "Must be bubble or carousel")]
    if contents["type"] == "carousel":
        bubbles = contents.get("contents")
        if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= 12:
            return [_detail(f"{prop}.contents", "Size must be between 1 and 12")]
        if len(json.dumps(contents, ensure_ascii=False).encode()) > 50_000:
            return [_detail(prop, "Carousel exceeds 50KB")]
    else:
        bubbles = [contents]
    details = []
    for n, bubble in enumerate(bubbles):
        if len(json.dumps(bubble, ensure_ascii=False).encode()) > 30_000:
            details.append(_detail(f"{prop}.contents[{n}]", "Bubble exceeds 30KB"))
        details += list(_walk_actions(bubble, f"{prop}.contents[{n}]"))
    return details


def _walk_actions(node: Any, prop: str) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "action":
                yield from _validate_action(value, f"{prop}.action")
            else:
                yield from _walk_actions(value, f"{prop}.{key}")
    elif isinstance(node, list):
        for n, item in enumerate(node):
            yield from _walk_actions(item, f"{prop}[{n}]")
