"""Build LINE message objects (line-bot-sdk models) and keep them inside LINE's limits.

Desks become Flex bubbles with a tel: button per number and a url button when
there is one; postback data is our own small query string, parsed strictly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linebot.v3.messaging import (
    FlexContainer,
    FlexMessage,
    Message,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    TextMessage,
)

from bot.content.schema import Card, Desk, Text, Triage
from bot.core.postback import MAX_POSTBACK_DATA, postback_data

MAX_MESSAGES = 5
MAX_TEXT_UTF16 = 5000
MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
MAX_ALT_TEXT = 1500
MAX_BUBBLES = 12
MAX_BUBBLE_BYTES = 30_000

@dataclass(frozen=True)
class QuickAction:
    label: str
    data: str
    # What appears as the resident's bubble; None leaves no trace in the talk
    # (used for 「画面を切り替える」 so the history does not say what was hidden).
    display: str | None = None


def quick_reply(actions: Sequence[QuickAction]) -> QuickReply | None:
    if not actions:
        return None
    return QuickReply(items=[
        QuickReplyItem(action=PostbackAction(label=_fit(a.label), data=a.data, display_text=a.display))
        for a in actions[:MAX_QUICK_REPLIES]
    ])


def _fit(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def text_message(body: str, actions: Sequence[QuickAction] = ()) -> TextMessage:
    return TextMessage(text=body, quick_reply=quick_reply(actions))


def with_quick_reply(message: Message, actions: Sequence[QuickAction]) -> Message:
    """Quick replies show only on the last message of a reply, so attach them there."""
    message.quick_reply = quick_reply(actions)
    return message


def _t(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "wrap": True, **style}


def desk_bubble(desk: Desk, lang: str, ui: Mapping[str, Text]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [_t(desk.name.get(lang), weight="bold", size="md")]
    if desk.about:
        body.append(_t(desk.about.get(lang), size="sm", color="#555555"))
    for phone in desk.phones:
        line = f"☎ {phone.shown}"
        if phone.label:
            line += f"（{phone.label.get(lang)}）" if lang != "en" else f" ({phone.label.get(lang)})"
        body.append(_t(line, size="sm"))
    if not desk.phones:  # the loader lets no desk without a phone, page or chat onto a card
        body.append(_t(ui["no_phone" if desk.official_url else "no_phone_chat"].get(lang), size="sm", color="#555555"))
    # never point to a page the card has no button for
    unknown = "hours_unknown" if desk.official_url else "hours_unknown_by_phone"
    hours = f"{ui['hours'].get(lang)}: {desk.hours.get(lang)}" if desk.hours else ui[unknown].get(lang)
    body.append(_t(hours, size="xs", color="#555555"))
    body.append(_t(f"{ui['checked'].get(lang)}: {desk.last_checked.isoformat()}", size="xxs", color="#888888"))

    buttons: list[dict[str, Any]] = []
    call = ui["call_button"].get(lang)
    for i, phone in enumerate(desk.phones[:3]):
        label = f"{call} {phone.shown}"
        buttons.append({
            "type": "button", "style": "primary" if i == 0 else "secondary", "height": "sm",
            "action": {"type": "uri", "label": label if len(label) <= MAX_LABEL else _fit(phone.shown),
                       "uri": phone.tel_uri},
        })
    if desk.chat_url:
        buttons.append({"type": "button", "style": "secondary", "height": "sm",
                        "action": {"type": "uri", "label": _fit(ui["chat_button"].get(lang)), "uri": desk.chat_url}})
        body.append(_t(ui["chat_no_history"].get(lang), size="xs", color="#555555"))
    if desk.official_url:
        buttons.append({"type": "button", "style": "link", "height": "sm",
                        "action": {"type": "uri", "label": _fit(ui["web_button"].get(lang)), "uri": desk.official_url}})
    bubble: dict[str, Any] = {
        "type": "bubble", "size": "kilo",
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
    }
    if buttons:
        bubble["footer"] = {"type": "box", "layout": "vertical", "spacing": "sm", "contents": buttons}
    return bubble


def desks_message(desks: Sequence[Desk], lang: str, ui: Mapping[str, Text]) -> FlexMessage:
    bubbles = [desk_bubble(d, lang, ui) for d in desks[:MAX_BUBBLES]]
    contents = bubbles[0] if len(bubbles) == 1 else {"type": "carousel", "contents": bubbles}
    # altText shows on the lock screen: always the neutral 「相談窓口のご案内」 (S2).
    return FlexMessage(alt_text=ui["desks_alt"].get(lang), contents=FlexContainer.from_dict(contents))


def card_message(title: str, body: str) -> FlexMessage:
    bubble = {
        "type": "bubble", "size": "kilo",
        "body": {"type": "box", "layout": "vertical", "spacing": "md",
                 "contents": [_t(title, weight="bold", size="md"), _t(body, size="sm")]},
    }
    return FlexMessage(alt_text=title, contents=FlexContainer.from_dict(bubble))


def triage_message(triage: Triage, lang: str) -> FlexMessage:
    """One bubble; each need is a tappable row (box action), so long headings fit."""
    rows: list[dict[str, Any]] = [_t(triage.title.get(lang), weight="bold", size="md")]
    for n, need in enumerate(triage.needs, 1):
        rows.append({
            "type": "box", "layout": "horizontal", "spacing": "sm", "paddingAll": "6px",
            "backgroundColor": "#F2F4F7", "cornerRadius": "6px",
            "action": {"type": "postback", "data": postback_data("intent", id=need.intent)},
            "contents": [_t(f"({n})", size="sm", flex=0, color="#555555"), _t(need.text.get(lang), size="sm")],
        })
    bubble = {"type": "bubble", "size": "mega",
              "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": rows}}
    return FlexMessage(alt_text=triage.title.get(lang), contents=FlexContainer.from_dict(bubble))


def harmless_message(card: Card, lang: str) -> FlexMessage:
    return card_message(card.title.get(lang), card.body.get(lang))


def check_limits(messages: Sequence[Message]) -> list[str]:
    """Every way these messages would be rejected by LINE (empty when fine)."""
    problems: list[str] = []
    if not 1 <= len(messages) <= MAX_MESSAGES:
        problems.append(f"{len(messages)} messages (LINE takes 1-{MAX_MESSAGES})")
    for n, message in enumerate(messages):
        wire = message.to_dict()
        if wire["type"] == "text" and len(wire["text"].encode("utf-16-le")) // 2 > MAX_TEXT_UTF16:
            problems.append(f"message {n}: text over {MAX_TEXT_UTF16} UTF-16 units")
        if wire["type"] == "flex":
            if len(wire["altText"]) > MAX_ALT_TEXT:
                problems.append(f"message {n}: altText too long")
            container = wire["contents"]
            bubbles = container["contents"] if container["type"] == "carousel" else [container]
            if len(bubbles) > MAX_BUBBLES:
                problems.append(f"message {n}: {len(bubbles)} bubbles")
            for bubble in bubbles:
                if len(json.dumps(bubble, ensure_ascii=False).encode()) > MAX_BUBBLE_BYTES:
                    problems.append(f"message {n}: a bubble is over 30 KB")
        items = (wire.get("quickReply") or {}).get("items", [])
        if len(items) > MAX_QUICK_REPLIES:
            problems.append(f"message {n}: {len(items)} quick replies")
        for item in items:
            action = item["action"]
            if len(action.get("label", "")) > MAX_LABEL:
                problems.append(f"message {n}: quick-reply label {action['label']!r} over {MAX_LABEL}")
            if len(action.get("data", "")) > MAX_POSTBACK_DATA:
                problems.append(f"message {n}: postback data over {MAX_POSTBACK_DATA}")
    return problems
