"""The alert settings and the onboarding steps after 友だち追加: the postbacks in ACTS.

Dialogue.welcome offers the languages; a choice (or skip) leads to the area, then the
topics, each step skippable; 「設定を見る」 shows the current choice with the buttons that
change it. Dialogue.respond stays the one way in: it routes these postbacks here and
passes itself as the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import redis

from bot.broadcast.subscriptions import Subscriptions
from bot.content.loader import City
from bot.content.schema import Text
from bot.conversation.state import ConversationStore
from bot.conversation.turn import Turn
from bot.core.postback import postback_data
from bot.line import messages as m

ACTS = ("lang", "areas", "area", "topics", "topic", "done", "settings", "mode", "stop")


class Host(Protocol):
    """What the flow uses of the Dialogue that runs it: its stores, its city and its buttons."""

    store: ConversationStore
    subscriptions: Subscriptions | None
    city: City
    ui: Mapping[str, Text]

    def menu(self, lang: str) -> Turn: ...
    def _qa(self, key: str, lang: str, data: str, display: bool = True) -> m.QuickAction: ...
    def _menu_button(self, lang: str) -> list[m.QuickAction]: ...
    def _menu_actions(self, lang: str) -> list[m.QuickAction]: ...


def settings(host: Host, user_id: str, act: str, params: Mapping[str, str], lang: str) -> Turn:
    if act == "lang":
        if params["l"] not in ("ja", "en", "easy"):
            return host.menu(lang)
        lang = params["l"]
        host.store.set_lang(user_id, lang)
        act = "areas"
    if host.subscriptions is None:
        return host.menu(lang)
    try:
        return _settings_step(host, user_id, act, params, lang)
    except redis.RedisError:
        msg = m.text_message(host.ui["settings_unavailable"].get(lang), host._menu_actions(lang))
        return Turn([msg], "settings", lang=lang)


def _settings_step(host: Host, user_id: str, act: str, params: Mapping[str, str], lang: str) -> Turn:
    subs = host.subscriptions
    assert subs is not None
    areas = {a.id: a for a in host.city.config.areas}
    topics = {t.id: t for t in host.city.config.topics}
    if act in ("area", "topic"):
        # Alerts come in the language the resident sets them up in (English when staff wrote it).
        subs.set_language(user_id, lang)
    if act == "area":
        if params["a"] not in areas:
            return host.menu(lang)
        subs.set_areas(user_id, [params["a"]])
        act = "topics"
    elif act == "topic":
        if params["t"] not in topics:
            return host.menu(lang)
        subs.toggle_topic(user_id, params["t"])
        act = "topics"
    elif act == "mode":
        digest = host.city.config.digest
        if params["m"] not in ("now", "digest") or digest is None:
            return host.menu(lang)
        subs.set_digest(user_id, params["m"] == "digest")
    elif act == "stop":
        subs.remove_user(user_id)

    if act == "areas":
        actions = [m.QuickAction(a.label.get(lang), postback_data("area", a=a.id), display=a.label.get(lang))
                   for a in areas.values()]
        actions.append(host._qa("skip_button", lang, postback_data("topics")))
        return Turn([m.text_message(host.ui["onboard_area"].get(lang), actions)], "settings", lang=lang)
    if act == "topics":
        chosen = subs.get(user_id).topics
        actions = [m.QuickAction(("✓ " if t.id in chosen else "") + t.label.get(lang),
                                 postback_data("topic", t=t.id)) for t in topics.values()]
        actions.append(host._qa("done_button", lang, postback_data("done")))
        return Turn([m.text_message(host.ui["onboard_topics"].get(lang), actions)], "settings", lang=lang)

    # done / settings: show the current choice
    choice = subs.get(user_id)
    none = host.ui["settings_none"].get(lang)
    label: Callable[[dict, tuple[str, ...]], str] = lambda table, ids: "、".join(  # noqa: E731
        table[i].label.get(lang) for i in ids if i in table) or none
    text = (f"{host.ui['settings_summary'].get(lang)}\n"
            f"・{host.ui['settings_area'].get(lang)}: {label(areas, choice.areas)}\n"
            f"・{host.ui['settings_topics'].get(lang)}: {label(topics, choice.topics)}")
    actions = [host._qa("change_area_button", lang, postback_data("areas")),
               host._qa("change_topics_button", lang, postback_data("topics"))]
    digest = host.city.config.digest
    if digest is not None:
        on = subs.wants_digest(user_id)
        mode = f"{host.ui['mode_digest'].get(lang)} ({digest.time})" if on else host.ui["mode_now"].get(lang)
        text += f"\n・{host.ui['settings_mode'].get(lang)}: {mode}"
        if act == "mode" and on:
            text = f"{host.ui['mode_changed_digest'].get(lang)}\n\n{text}"
        actions.append(host._qa("change_mode_button", lang, postback_data("mode", m="now" if on else "digest")))
    return Turn([m.text_message(text, actions + host._menu_button(lang))], "settings", lang=lang)
