"""Dialogue turns through the real matcher, content and a real Redis."""

from __future__ import annotations

import pytest

from bot.content.schema import dialable
from bot.conversation.dialogue import Dialogue
from bot.conversation.state import ConversationStore
from bot.conversation.turn import PostbackInput, TextInput
from bot.core import policy
from bot.core.postback import parse_postback, postback_data
from bot.core.redis_conn import connect
from bot.line.messages import check_limits
from bot.understanding.matcher import Matcher

USER = "U0123456789abcdef0123456789abcdef"


def wire(turn):
    return [m.to_dict() for m in turn.messages]


def buttons(turn):
    """Every footer button action of every Flex bubble, in order."""
    out = []
    for msg in wire(turn):
        if msg["type"] != "flex":
            continue
        container = msg["contents"]
        for bubble in container["contents"] if container["type"] == "carousel" else [container]:
            out += [c["action"] for c in bubble.get("footer", {}).get("contents", [])]
    return out


def quick_labels(turn):
    items = (wire(turn)[-1].get("quickReply") or {}).get("items", [])
    return [i["action"]["label"] for i in items]


def quick_data(turn):
    items = (wire(turn)[-1].get("quickReply") or {}).get("items", [])
    return [i["action"]["data"] for i in items]


def all_text(turn) -> str:
    return repr(wire(turn))


@pytest.fixture
def chat(runtime):
    dialogue = runtime.dialogue("kumamoto")
    return lambda text, user=USER: dialogue.respond(user, TextInput(text))


@pytest.fixture
def tap(runtime):
    dialogue = runtime.dialogue("kumamoto")
    return lambda data, user=USER: dialogue.respond(user, PostbackInput(data))


def test_fraud_call_gets_city_wording_advice_and_desks(chat):
    turn = chat("息子を名乗る電話でお金を要求された")
    assert turn.decision == "answer" and turn.intent == "fraud_phone"
    first = wire(turn)[0]
    assert first["type"] == "text" and "電話で『お金』詐欺" in first["text"]
    assert any(b["uri"].startswith("tel:") for b in buttons(turn))
    assert "tel:0963812567" in [b["uri"] for b in buttons(turn)]  # the 24h fraud hotline
    assert not turn.sensitive


def test_dv_gets_help_notice_and_switch_screen(chat):
    turn = chat("夫に殴られる")
    assert turn.intent == "dv" and turn.sensitive
    assert "あなたは悪くありません" in wire(turn)[0]["text"]
    assert "このトークの内容は" in all_text(turn)
    assert "画面を切り替える" in quick_labels(turn)
    # the notice is shown once per conversation, the switch button every time
    again = chat("旦那に叩かれた")
    assert again.intent == "dv"
    assert "このトークの内容は" not in all_text(again)
    assert "画面を切り替える" in quick_labels(again)


def test_being_followed_now_puts_110_first(chat):
    turn = chat("いま知らない人に後をつけられてる")
    assert turn.intent == "emergency"
    assert wire(turn)[0]["text"].lstrip().find("110") < 20
    tel = [b["uri"] for b in buttons(turn) if b["uri"].startswith("tel:")]
    assert tel[0] == "tel:110"
    assert quick_labels(turn) == []  # nothing else until they tap (docs/safety.md §6)


def test_suicide_crisis_leads_with_119_and_is_short(chat):
    turn = chat("もう死にたい")
    assert turn.intent == "suicide_crisis"
    tel = [b["uri"] for b in buttons(turn) if b["uri"].startswith("tel:")]
    assert tel[0] == "tel:119"
    assert len(turn.messages) <= 2
    assert "画面を切り替える" in quick_labels(turn)


def test_weather_gets_the_fallback_with_menu_and_a_general_desk(chat, runtime):
    turn = chat("今日の天気は？")
    assert turn.decision == "fallback" and turn.intent is None
    menu = runtime.catalog.city("kumamoto").config.menu
    assert quick_labels(turn) == [item.label.ja for item in menu]
    assert any(b["uri"].startswith("tel:") for b in buttons(turn))


def test_phone_follow_up_uses_the_last_intent(chat):
    chat("還付金があるって電話がきた")
    turn = chat("電話番号は？")
    assert turn.decision == "followup" and turn.intent == "fraud_phone"
    assert "096-381-2567" in wire(turn)[0]["text"]


def test_follow_up_without_context_asks_to_choose(chat):
    turn = chat("電話番号は？")
    assert turn.decision == "followup" and turn.intent is None
    assert len(quick_labels(turn)) >= 3


def test_more_desks_follow_up(chat, tap, runtime):
    first = chat("還付金があるって電話がきた")
    assert postback_data("more", i="fraud_phone") in quick_data(first)
    turn = tap(postback_data("more", i="fraud_phone"))
    more = runtime.catalog.city("kumamoto").answers["fraud_phone"].more_desks
    if more:
        assert wire(turn)[-1]["type"] == "flex"
    else:
        assert wire(turn)[0]["type"] == "text"


def test_switch_screen_replies_with_harmless_card_and_forgets(chat, tap, runtime, redis_client):
    chat("夫に殴られる")
    assert redis_client.keys("conv:*")
    turn = tap(postback_data("switch"))
    card = wire(turn)[0]
    assert card["type"] == "flex"
    title = runtime.catalog.city("kumamoto").config.harmless_card.title.ja
    assert card["altText"] == title
    assert "dv" not in all_text(turn).lower() and "相談" not in card["altText"]
    assert redis_client.keys("conv:*") == []
    # after switching, a follow-up has no context left
    assert chat("電話番号は？").intent is None


def test_clarify_stores_pending_and_a_number_picks(runtime, catalog):
    # A matcher that never trusts its top score: every in-scope message clarifies.
    matcher = Matcher(catalog)
    matcher.thresholds = catalog.thresholds.model_copy(update={"margin": 100.0})
    dialogue = Dialogue(catalog, "kumamoto", matcher, runtime.store)
    turn = dialogue.respond(USER, TextInput("還付金があるって電話がきた"))
    assert turn.decision == "clarify" and turn.intent is None
    options = [c.intent for c in turn.candidates]
    assert 2 <= len(options) <= 3 and quick_labels(turn)[:len(options)] == [
        catalog.by_id[i].label.ja for i in options]
    picked = dialogue.respond(USER, TextInput("2"))
    assert picked.decision == "answer" and picked.intent == options[1]


def test_malformed_postback_gets_the_menu(tap):
    for data in ["", "act=", "act=explode", "act=intent", "act=intent&id=nope", "id=dv", "act=menu&act=menu",
                 "%%%", "act=intent&id=dv&x=1", "x" * 400]:
        turn = tap(data)
        assert turn.decision in ("menu",), data
        assert quick_labels(turn)


def test_postback_parser_is_strict():
    assert parse_postback("act=intent&id=dv").params == {"id": "dv"}
    assert parse_postback("act=more&extra=1") is None
    assert parse_postback("act=intent&id=dv&id=x") is None


def test_menu_postback_answers_intent(tap):
    turn = tap(postback_data("intent", id="fraud_online"))
    assert turn.decision == "answer" and turn.intent == "fraud_online"


def test_english_message_gets_english_answer(chat):
    turn = chat("my husband hits me")
    assert turn.intent == "dv" and turn.lang == "en"
    assert "あなたは" not in wire(turn)[0]["text"]


def test_no_resident_text_in_redis(chat, redis_client):
    secret = "夫に殴られる毎晩ひどいことを言われる山田花子"
    chat(secret)
    chat("電話番号は？")
    chat("今日の天気は？")
    dump = []
    for key in redis_client.keys("*"):
        dump.append(key)
        kind = redis_client.type(key)
        if kind == "hash":
            dump += [f"{k}={v}" for k, v in redis_client.hgetall(key).items()]
        elif kind == "string":
            dump.append(redis_client.get(key))
    blob = "\n".join(dump)
    assert "殴" not in blob and "山田" not in blob and "天気" not in blob
    assert USER not in blob  # state is keyed by a salted hash, not the LINE user id
    assert "dv" not in [v for line in dump for v in line.split("=")[1:]]  # opaque intent code


def test_state_ttls(chat, redis_client, runtime):
    chat("還付金の電話がきた")
    (key,) = redis_client.keys("conv:*")
    assert 0 < redis_client.ttl(key) <= runtime.settings.state_ttl_seconds
    chat("夫に殴られる")
    assert 0 < redis_client.ttl(key) <= runtime.settings.sensitive_state_ttl_seconds


def test_intent_counters_have_no_user_id(chat, redis_client):
    chat("夫に殴られる")
    keys = redis_client.keys("stats:*")
    assert keys and all(USER not in k for k in keys)


def test_bot_answers_without_memory_when_redis_is_down(catalog, runtime):
    dead = connect("redis://127.0.0.1:1/0", runtime.settings.data_dir).client  # nothing listens there
    store = ConversationStore(dead, [i.id for i in catalog.intents], salt="x")
    dialogue = Dialogue(catalog, "kumamoto", runtime.matcher, store)
    turn = dialogue.respond(USER, TextInput("息子を名乗る電話でお金を要求された"))
    assert turn.intent == "fraud_phone" and store.degraded
    assert dialogue.respond(USER, TextInput("電話番号は？")).intent is None


def test_follow_up_buttons_work_with_redis_stopped(catalog, runtime):
    """「ほかの窓口」 and 「電話番号の一覧」 name their answer: no state needed (Redis down)."""
    dead = connect("redis://127.0.0.1:1/0", runtime.settings.data_dir).client  # nothing listens there
    dialogue = Dialogue(catalog, "kumamoto", runtime.matcher,
                        ConversationStore(dead, [i.id for i in catalog.intents], salt="x"))
    answer = dialogue.respond(USER, TextInput("もう死にたい"))
    buttons_ = [d for d in quick_data(answer) if d.startswith(("act=more", "act=phones"))]
    assert {"act=more&i=suicide_crisis", "act=phones&i=suicide_crisis"} <= set(buttons_)
    more = dialogue.respond(USER, PostbackInput("act=more&i=suicide_crisis"))
    assert (more.decision, more.intent) == ("followup", "suicide_crisis") and wire(more)[-1]["type"] == "flex"
    phones = dialogue.respond(USER, PostbackInput("act=phones&i=suicide_crisis"))
    assert phones.intent == "suicide_crisis" and "119" in wire(phones)[0]["text"]
    # an answer id that does not exist is a malformed postback: the menu
    assert dialogue.respond(USER, PostbackInput("act=more&i=nope")).decision == "menu"


def test_phone_list_names_each_number_once(chat):
    chat("闇バイトに応募してしまった")
    text = wire(chat("電話番号は？"))[0]["text"]
    numbers = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert numbers and len(numbers) == len(set(numbers))


def test_fallback_says_choose_from_the_menu_once(chat):
    text = wire(chat("今日の天気は？"))[0]["text"]
    assert text.count("メニューから選") == 1


@pytest.mark.parametrize("city", ["kumamoto", "minato"])
@pytest.mark.parametrize("lang", ["ja", "en", "easy"])
def test_every_answer_fits_line_limits_and_safety_rules(runtime, catalog, city, lang, redis_client):
    dialogue = runtime.dialogue(city)
    store = runtime.store
    store.set_lang(USER, lang)
    for intent in catalog.intents:
        turn = dialogue.respond(USER, PostbackInput(postback_data("intent", id=intent.id)))
        assert turn.intent == intent.id
        assert check_limits(turn.messages) == [], (city, intent.id)
        for msg in wire(turn):
            if msg["type"] == "flex":
                assert policy.forbidden_label_word(msg["altText"]) is None, (intent.id, msg["altText"])
            for label in [i["action"]["label"] for i in (msg.get("quickReply") or {}).get("items", [])]:
                assert policy.forbidden_label_word(label) is None, (intent.id, label)
            assert policy.never_say_phrase(repr(msg)) is None, intent.id
        if intent.flow == "sensitive":
            assert turn.sensitive and postback_data("switch") in quick_data(turn), (city, intent.id)
        if intent.priority == "crisis":
            tel = [b["uri"] for b in buttons(turn) if b["uri"].startswith("tel:")]
            assert tel[0] in ("tel:110", "tel:119"), (city, intent.id)


@pytest.mark.parametrize("city", ["kumamoto", "minato"])
@pytest.mark.parametrize("lang", ["ja", "en", "easy"])
def test_every_button_of_every_answer_dials_or_opens_the_operators_page(runtime, catalog, city, lang):
    """Every tel: a phone can dial as it is (area code included); every web button opens
    a page that a desk of that answer names as its operator's own (official_url) or its
    chat; nothing else (never a source page). Answers, crisis variants and their
    「ほかの窓口」 cards, in every city and language."""
    dialogue = runtime.dialogue(city)
    desks = catalog.city(city).desks
    pages = {url for d in desks.values() for url in (d.official_url, d.chat_url) if url}
    sources = {s for d in desks.values() for s in d.sources} - pages
    state = runtime.store.get(USER)
    checked = 0
    for answer_id, answer in catalog.city(city).answers.items():
        intent = catalog.crisis_answers.get(answer_id, answer_id)
        turns = [dialogue.answer(USER, intent, lang, state, answer_id=answer_id)]
        turns.append(dialogue.respond(USER, PostbackInput(postback_data("more", i=answer_id))))
        own = {url for d in answer.desks + answer.more_desks
               for url in (desks[d].official_url, desks[d].chat_url) if url}
        for turn in turns:
            for action in buttons(turn):
                uri = action["uri"]
                checked += 1
                if uri.startswith("tel:"):
                    digits = uri[4:].replace("%23", "#")
                    assert dialable(digits), (city, answer_id, uri)
                else:
                    assert uri in own and uri in pages and uri not in sources, (city, answer_id, uri)
    assert checked > 100


def test_minato_triage_card_follows_the_plans_nine_headings(runtime):
    dialogue = runtime.dialogue("minato")
    turn = dialogue.respond(USER, PostbackInput(postback_data("intent", id="where_to_start")))
    cards = [m for m in wire(turn) if m["type"] == "flex" and m["contents"]["type"] == "bubble"
             and any(c.get("action") for c in m["contents"]["body"]["contents"])]
    (triage,) = cards
    rows = [c for c in triage["contents"]["body"]["contents"] if c.get("action")]
    assert len(rows) == 9
    assert "今夜寝て過ごす場所がない" in repr(rows[0]) and "子ども・若者の悩み" in repr(rows[8])
    tapped = dialogue.respond(USER, PostbackInput(rows[0]["action"]["data"]))
    assert tapped.intent == "reentry_urgent_shelter"


def test_language_switch_offers_the_languages_and_keeps_the_choice(chat, tap, redis_client):
    turn = chat("English please")
    assert turn.intent == "language_switch"
    assert postback_data("lang", l="easy") in quick_data(turn)
    tap(postback_data("lang", l="en"))
    assert chat("夫に殴られる").lang == "en"


def test_alerts_unsubscribe_offers_stop_and_stop_removes_everything(chat, tap, redis_client):
    tap(postback_data("area", a="kita"))
    tap(postback_data("topic", t="fraud"))
    assert redis_client.smembers("sub:kumamoto:topic:fraud") == {USER}
    turn = chat("通知をやめたい")
    assert turn.intent == "alerts_unsubscribe" and postback_data("stop") in quick_data(turn)
    tap(postback_data("stop"))
    assert redis_client.smembers("sub:kumamoto:topic:fraud") == set()
    assert redis_client.keys("sub:*user*") == []


def test_buttons_and_loanwords_keep_the_language_the_resident_writes_in(chat, tap):
    """An English writer who never chose a language: 「Other desks」 and a bare 「SOS」
    stay in English; a Japanese resident's 「SOS」 stays Japanese."""
    first = chat("I am being abused by my partner")
    assert first.lang == "en" and first.intent == "dv"
    more = tap(postback_data("more", i="dv"))
    assert more.lang == "en" and "Call" in repr(wire(more))
    assert chat("SOS").lang == "en"
    other = "U" + "f" * 32
    assert chat("SOS", user=other).lang == "ja"
    assert chat("DV", user=other).lang == "ja"
