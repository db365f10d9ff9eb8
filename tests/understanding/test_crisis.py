"""The crisis layer and the DV guard (issue 11), through the real matcher, content and Redis.

The sets under tests/data were written by helpers who never saw our examples or cues:
- crisis_heldout.yaml: crisis messages of seven kinds and non-crisis near-misses;
- crisis_conversations.yaml: short conversations whose last turn is a crisis;
- dv_phrasings.yaml: DV victims, people asking for them, and people who harm a partner.
"""

from __future__ import annotations

import pytest
import yaml

from bot.conversation.turn import TextInput
from bot.settings import REPO_ROOT
from bot.understanding.crisis_eval import (
    crisis_report,
    first_number,
    is_crisis_answer,
    load_crisis_items,
)
from tests.conversation.test_dialogue import buttons

DATA = REPO_ROOT / "tests" / "data"
USER = "U0123456789abcdef0123456789abcdef"
DV_TABLE = yaml.safe_load((DATA / "dv_phrasings.yaml").read_text(encoding="utf-8"))
VICTIMS = [i["text"] for i in DV_TABLE if i["expect"] == "dv"]
# The phrasings residents were seen to get the abuser's answer, or no DV answer, for.
REPORTED_DV = ["DVの相談をしたい", "DVを受けています", "DV", "DV受けてます", "DVにあっている",
               "I am being abused by my partner", "DVされてる", "家庭内暴力", "DV被害", "DV相談"]
# Floors just under the figures measured when they were set: a regression fails CI.
FLOORS = {"recall": 0.99, "right_number_first": 0.985, "victims_answered_dv": 0.895}


def wire(turn):
    return [m.to_dict() for m in turn.messages]


def quick(turn):
    return [i["action"] for i in (wire(turn)[-1].get("quickReply") or {}).get("items", [])]


@pytest.fixture
def chat(runtime):
    dialogue = runtime.dialogue("kumamoto")
    return lambda text, user=USER: dialogue.respond(user, TextInput(text))


def test_the_table_has_enough_victim_phrasings():
    assert len(VICTIMS) >= 60 + len(REPORTED_DV)
    assert sum(any(w in t for w in ("DV", "ＤＶ", "家庭内暴力", "domestic violence")) for t in VICTIMS) >= 40


def test_no_victim_phrasing_reaches_the_perpetrator_answer(shared_matcher):
    reached = [t for t in VICTIMS + REPORTED_DV if shared_matcher.match(t).intent == "dv_perpetrator"]
    assert reached == []


def test_victim_phrasings_mostly_get_the_dv_answer(shared_matcher):
    answered = [t for t in VICTIMS if shared_matcher.match(t).intent == "dv"]
    assert len(answered) / len(VICTIMS) >= FLOORS["victims_answered_dv"]


@pytest.mark.parametrize("text", REPORTED_DV)
def test_reported_dv_phrasings_get_the_dv_answer_notice_and_quick_exit(chat, text):
    turn = chat(text)
    assert (turn.decision, turn.intent) == ("answer", "dv"), turn
    assert "あなたは悪くありません" in wire(turn)[0]["text"] or "done nothing wrong" in wire(turn)[0]["text"]
    assert "画面を切り替える" in [a["label"] for a in quick(turn)] or "Switch screen" in repr(quick(turn))
    assert turn.sensitive


@pytest.mark.parametrize("text", [
    # やさしい日本語 and hiragana: the partner as the subject is written in kana too
    "わたしは 日本人の おっとと けっこんしました。おっとは おこると わたしを たたきます。",
    "かれしは わたしを なぐります。わたしは こわいです",
    "つまが わたしを たたく。ぼくは おとこ です",
])
def test_kana_victims_never_reach_the_perpetrator_answer(shared_matcher, text):
    assert shared_matcher.match(text).intent != "dv_perpetrator"


@pytest.mark.parametrize("text", ["妻を殴ってしまう", "カッとなって手が出る", "DVをやめたい、加害者プログラムを受けたい"])
def test_a_writer_who_says_they_harm_gets_the_perpetrator_answer(shared_matcher, text):
    assert shared_matcher.match(text).intent == "dv_perpetrator"


def test_the_guard_is_a_rule_the_classifier_cannot_outvote(shared_matcher):
    """Even where the classifier's favourite is the perpetrator answer, a message without
    the writer's own act goes to dv (「DV」 alone once scored dv_perpetrator first)."""
    scores = shared_matcher.score("DV")
    assert dict((c.intent, c.score) for c in scores.intents)["dv_perpetrator"] == 0.0


def test_held_out_crisis_set(shared_matcher, catalog):
    items = load_crisis_items(DATA / "crisis_heldout.yaml")
    assert sum(i.crisis for i in items) >= 300
    report = crisis_report(shared_matcher, catalog.city("kumamoto"), items)["all"]
    assert report["recall"] >= FLOORS["recall"], report
    assert report["right_number_first"] >= FLOORS["right_number_first"], report
    assert report["false_crisis"] is not None  # reported, not hidden


def test_second_crisis_dev_set(shared_matcher, catalog):
    """A second set by another helper, read and worked on (its misses were kinds the cues
    lacked: 「じぶんを ころしたい」, an ATM with the caller on the line): kept at its figure."""
    items = load_crisis_items(DATA / "crisis_dev2.yaml")
    assert sum(i.crisis for i in items) >= 250
    report = crisis_report(shared_matcher, catalog.city("kumamoto"), [], items)["dev"]
    assert report["recall"] == 1.0, report["misses"]
    assert report["right_number_first"] >= 0.99, report


def test_crisis_conversations_end_in_the_crisis_answer(runtime, catalog):
    dialogue = runtime.dialogue("kumamoto")
    city = catalog.city("kumamoto")
    missed = []
    for n, conv in enumerate(yaml.safe_load((DATA / "crisis_conversations.yaml").read_text(encoding="utf-8"))):
        user = f"U{n:032x}"
        for text in conv["turns"]:
            turn = dialogue.respond(user, TextInput(text))
        if turn.intent not in conv["expect"]:
            missed.append((conv["turns"], turn.decision, turn.intent))
        elif conv["number"] and turn.decision == "answer":
            match = runtime.matcher.match(conv["turns"][-1])
            if first_number(match, city) != conv["number"]:
                missed.append((conv["turns"], "number", first_number(match, city)))
    assert missed == []


@pytest.mark.parametrize("text, number, also", [
    ("息子から電話でお金がいるって。あと家が燃えてる", "119", "fraud_phone"),
    ("詐欺の電話があった。ところで隣の家から煙が出てる", "119", "fraud_phone"),
    ("自転車の鍵を壊されて盗まれた。ていうか今日もう疲れた、生きてるのがしんどい", "119", "theft"),
    ("おじいちゃんが倒れて動かない", "119", None),
    ("ガス臭い", "119", None),
    ("今知らない男がドアをこじ開けようとしてる", "110", None),
])
def test_a_crisis_in_any_clause_comes_first_with_the_right_number(chat, shared_matcher, catalog, text, number, also):
    match = shared_matcher.match(text)
    assert is_crisis_answer(match, shared_matcher)
    assert first_number(match, catalog.city("kumamoto")) == number
    turn = chat(text)
    assert [b["uri"] for b in buttons(turn) if b["uri"].startswith("tel:")][0] == f"tel:{number}"
    if also:  # the topic the message also raised is the next step, one tap away
        assert any({"type": "postback", "data": f"act=intent&id={also}"}.items() <= a.items() for a in quick(turn))


@pytest.mark.parametrize("text", ["レポート終わらなくて死にそう笑", "火災保険の見直しをしたい", "推しが尊すぎて死ぬ",
                                  "去年の火事で家が全焼しました。支援制度はありますか"])
def test_hyperbole_and_past_events_are_not_a_crisis(shared_matcher, text):
    assert not is_crisis_answer(shared_matcher.match(text), shared_matcher)


def test_not_connecting_after_the_suicide_answer_shows_the_other_lines(chat):
    first = chat("もう死にたい")
    assert first.intent == "suicide_crisis"
    turn = chat("つながらない")
    assert (turn.decision, turn.intent) == ("followup", "suicide_crisis")
    assert "tel:110" not in repr(wire(turn))  # not the general emergency card


def test_a_fire_asked_about_after_a_fraud_answer_is_not_a_follow_up(chat):
    assert chat("還付金の電話がきた").intent == "fraud_phone"
    turn = chat("隣の家が燃えてる！どこに電話すればいい？")
    assert (turn.decision, turn.intent) == ("answer", "emergency")
    assert "119" in wire(turn)[0]["text"].split("\n")[0]


def test_the_cue_prefilter_never_hides_a_match(catalog, shared_matcher):
    """Cue patterns are skipped when none of their possible first characters occurs in the
    text: on every crisis example and test message, a skipped pattern would not have matched."""
    import re

    from bot.understanding.crisis import first_chars

    texts = [shared_matcher.normalize(t) for i in catalog.intents for t in i.examples]
    texts += [shared_matcher.normalize(t) for ts in catalog.crisis_training.values() for t in ts]
    texts += [shared_matcher.normalize(i.text) for i in load_crisis_items(DATA / "crisis_heldout.yaml")]
    for pattern in (p for cue in catalog.crisis.cues for p in cue.patterns):
        first, compiled = first_chars(pattern), re.compile(pattern)
        for text in texts:
            match = compiled.search(text)
            if match and first is not None:
                assert match.group(0)[:1] in first or match.group(0) == "", (pattern, text)


# Found in review: each failed before its fix.
@pytest.mark.parametrize("text", [
    "亭主がすぐ怒鳴る、私が悪いのかな",                  # an act verb and 私: the guard's words
    "うちのダンナ、怒鳴るし物を投げる。私やばい？",
    "うちの人は怒ると手をあげるんです。私が悪いのかな",
    "婚約者がすぐ手をあげる。私どうしたらいい",
])
def test_victims_with_the_guards_words_still_get_the_dv_answer(shared_matcher, text):
    assert shared_matcher.match(text).intent == "dv"


def test_the_perpetrator_answer_is_never_a_side_button(shared_matcher):
    match = shared_matcher.match("亭主がすぐ怒鳴る、私が悪いのかな。もう死にたい")
    assert match.intent == "suicide_crisis" and match.also != "dv_perpetrator"


@pytest.mark.parametrize("text, intent, number", [
    ("夫に殴られた。もう限界", "suicide_crisis", "119"),       # a suicide guess never yields to DV
    ("彼氏に叩かれた。頭がくらくらする", "emergency", "119"),   # nor a medical one
    ("子どもが熱で震えてる。助けて", "emergency", "119"),       # a plea names no kind: 119 leads
])
def test_a_crisis_of_another_kind_is_not_lost_to_a_topic(shared_matcher, catalog, text, intent, number):
    match = shared_matcher.match(text)
    assert match.intent == intent and first_number(match, catalog.city("kumamoto")) == number


@pytest.mark.parametrize("turns, number", [
    (["台所が燃えてる", "電話番号は？"], "119"),                 # follow-ups keep the 119 card's order
    (["台所が燃えてる", "つながらない、助けて"], "119"),
    (["死にたい", "つながらない、お腹が痛くて動けない"], "119"),  # a new kind is a new crisis
    (["死にたい", "他には？外に誰かいる"], "110"),
])
def test_after_a_crisis_answer_the_right_number_still_leads(chat, turns, number):
    for text in turns:
        turn = chat(text)
    tel = [b["uri"] for b in buttons(turn) if b["uri"].startswith("tel:")]
    if not tel:  # the phone list, as text: whichever number it names first
        shown = repr(wire(turn))
        tel = [f"tel:{min(('110', '119'), key=lambda n: shown.find(n) if n in shown else len(shown))}"]
    assert tel[0] == f"tel:{number}", wire(turn)


def test_a_drill_denied_is_a_real_fire(shared_matcher, catalog):
    match = shared_matcher.match("訓練じゃない、本当に火事です")
    assert first_number(match, catalog.city("kumamoto")) == "119"


def test_a_grabbed_neck_is_not_a_hanging(shared_matcher):
    """「首をつかまれ」 once matched the hanging cue 「首をつ…」 and got the suicide card."""
    verdict = shared_matcher.score("夫に首をつかまれて、思わず引っかいてしまいました").crisis
    assert verdict is None or verdict.kind != "suicide"
    assert shared_matcher.score("首をつりたい").crisis.kind == "suicide"


@pytest.mark.parametrize("text", ["旦那に髪の毛つかまれて引きずられた", "夫に首を絞められてる"])
def test_a_partner_harming_now_in_the_dv_words_gets_the_dv_answer_with_110_first(chat, shared_matcher, catalog,
                                                                                     text):
    """Danger now, named with the DV answer's own words (a partner and an act): the DV answer,
    which leads with 110 and adds the DV desks, the notice and the quick exit. It once got the
    general emergency card because the classifier scored 「emergency」 a little higher."""
    match = shared_matcher.match(text)
    assert match.intent == "dv" and is_crisis_answer(match, shared_matcher)
    assert first_number(match, catalog.city("kumamoto")) == "110"
    assert "画面を切り替える" in [a["label"] for a in quick(chat(text))]


def test_a_farewell_is_not_offered_thanks_beside_the_crisis_card(chat):
    """「今までありがとう…さようなら」 once got 「お礼・おわり」 as the next step (found by trying
    the bot as a resident): thanks, greetings, the menu and settings are never a side button."""
    turn = chat("みんな今までありがとう。もう疲れたから、さようなら")
    assert turn.intent == "suicide_crisis"
    assert not any("id=thanks" in a.get("data", "") for a in quick(turn))


@pytest.mark.parametrize("text", ["DVを受けています", "夫に殴られています", "死にたい"])
def test_the_quick_exit_is_the_first_button_of_a_sensitive_answer(chat, text):
    """At phone width only the first few quick replies show without scrolling."""
    assert quick(chat(text))[0]["label"] == "画面を切り替える"


def test_a_message_that_names_dv_is_not_taken_as_a_follow_up(shared_matcher):
    """「DV hotline number in Minato?」 read as 「電話番号は？」 about the last answer; a topic named
    in its own words (a keyword or pattern of the intent) is that topic's answer."""
    match = shared_matcher.match("DV hotline number in Minato?")
    assert (match.decision, match.intent) == ("answer", "dv")
    assert shared_matcher.match("電話番号は？").decision == "followup"
