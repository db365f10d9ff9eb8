"""One conversational turn: (user id, text or postback) -> the LINE messages to send.

Data flows one way: input -> matcher -> answer content -> message builders.
Nothing the resident wrote is stored, logged or echoed (docs/safety.md S6, §3);
the only memory is the opaque state kept by bot.conversation.state.

The turn's types are in bot.conversation.turn; `Decision` there lists every decision a
turn can carry (answer, clarify, fallback, followup, menu, switch, notice, survey,
settings, welcome, non_text). The alert-settings postbacks are answered by
bot.conversation.settings_flow.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence

import redis
from linebot.v3.messaging import Message

from bot.broadcast.subscriptions import Choice, Subscriptions
from bot.content.loader import Catalog
from bot.conversation import settings_flow
from bot.conversation.state import ConversationStore, ConvState
from bot.conversation.turn import Input, PostbackInput, Turn
from bot.core.postback import parse_postback, postback_data
from bot.line import messages as m
from bot.understanding.matcher import Candidate, Match, Matcher

log = logging.getLogger(__name__)
_YES = {"はい", "うん", "そう", "yes", "y", "ok"}


# Latin words Japanese residents type in Japanese messages: one of these alone is no sign
# of English (「DV」「SOS」「OK」「alert」 switched residents who never chose English).
_LOANWORDS = frozenset({"dv", "sos", "ok", "ng", "alert", "alerts", "line", "id", "sms", "sns", "atm", "pc",
                        "dm", "qr", "url", "app"})
_WORDS = re.compile(r"[A-Za-z]+")


def detect_lang(text: str) -> str | None:
    """English when the message is mostly latin letters and says more than one short
    word or a known loanword; None when it says nothing about the language (「SOS」
    alone); a resident's chosen language always wins over this."""
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.isascii() for c in letters) / len(letters) <= 0.6:
        return "ja"
    words = _WORDS.findall(text)
    if len(words) == 1 and (len(words[0]) <= 3 or words[0].lower() in _LOANWORDS):
        return None
    return "en"


class Dialogue:
    def __init__(self, catalog: Catalog, city: str, matcher: Matcher, store: ConversationStore,
                 subscriptions: Subscriptions | None = None) -> None:
        self.catalog = catalog
        self.city = catalog.city(city)
        self.matcher = matcher
        self.store = store
        self.subscriptions = subscriptions
        self.ui = catalog.ui
        self._built: dict[tuple, tuple[list[Message], list[dict]]] = {}

    # ------------------------------------------------------------ entry point

    def respond(self, user_id: str, inp: Input) -> Turn:
        state = self.store.get(user_id)
        if isinstance(inp, PostbackInput):
            turn = self._postback(user_id, inp.data, state)
        else:
            turn = self._text(user_id, inp.text, state)
        # Every answer is checked against LINE's limits by the tests, for every
        # city and language; here we only log what the turn was, never the text.
        log.info("turn decision=%s intent=%s score=%.1f", turn.decision, turn.intent, turn.score)
        return turn

    def _cached(self, key: tuple, build: Callable[[], list[Message]]) -> tuple[list[Message], list[dict]]:
        """Answers depend only on (content, language, flags): build each once.

        Building Flex models and serialising them through line-bot-sdk's models
        costs milliseconds per answer; the cached messages are never mutated."""
        hit = self._built.get(key)
        if hit is None:
            messages = build()
            hit = self._built[key] = (messages, [msg.to_dict() for msg in messages])
        return hit

    # ------------------------------------------------------------ text

    def _text(self, user_id: str, text: str, state: ConvState) -> Turn:
        lang = state.lang or detect_lang(text) or state.seen_lang or "ja"
        last_crisis = (state.last_answer or state.last_intent) if state.last_intent in self.matcher.crisis else None
        match = self.matcher.match(text, after=last_crisis)
        if state.free_text_for:
            self.store.await_free_text(user_id, None)
            # A crisis is never swallowed as a survey comment.
            if not (match.decision == "answer" and (match.intent in self.matcher.crisis or match.crisis)):
                from bot.broadcast import campaigns

                try:
                    campaigns.count_free_text(self.store.client, state.free_text_for)
                except redis.RedisError:
                    log.warning("could not count a free-text answer: redis unavailable")
                msg = m.text_message(self.ui["survey_thanks"].get(lang), self._menu_button(lang))
                return Turn([msg], "survey", lang=lang)
        picked = self._pick_pending(text, state)
        if picked:
            return self.answer(user_id, picked, lang, state, score=100.0)

        if state.last_intent in self.matcher.crisis and match.followup:
            followup = self._after_crisis(user_id, match, lang, state)
            if followup is not None:
                return followup
        if match.decision == "answer" and match.intent:
            return self.answer(user_id, match.intent, lang, state, match.score, match.candidates,
                               answer_id=match.answer, also=match.also)
        if match.decision == "followup" and match.followup:
            return self._followup(match.followup, lang, state, match.score, match.candidates)
        if match.decision == "clarify":
            return self._clarify(user_id, match.candidates, lang, match.score)
        return self._fallback(lang, match.score, match.candidates)

    def _after_crisis(self, user_id: str, match: Match, lang: str, state: ConvState) -> Turn | None:
        """「つながらない」「ほかには？」 right after a crisis answer is about that answer: its
        other lines (or the card again when it has none), not a new topic. A crisis named in
        the message, or one of another kind (a fire after 「死にたい」), gets its own answer."""
        last = state.last_answer or state.last_intent
        assert last is not None and match.followup is not None
        crisis = match.crisis
        # a plea (「助けて」) names no kind: it is still this crisis
        if crisis is not None and not crisis.plea and (crisis.evidence != "model" or crisis.answer != last):
            return None
        if match.followup == "more" and not self.city.answers[last].more_desks:
            intent = self.catalog.crisis_answers.get(last, last)
            return self.answer(user_id, intent, lang, state, match.score, match.candidates, answer_id=last)
        return self._followup(match.followup, lang, state, match.score, match.candidates)

    def _pick_pending(self, text: str, state: ConvState) -> str | None:
        """A typed 「1」「2」 or 「はい」 chooses from the pending 「もしかして」 list."""
        if not state.pending:
            return None
        answer = self.matcher.normalize(text)
        if answer.isdigit() and 1 <= int(answer) <= len(state.pending):
            return state.pending[int(answer) - 1]
        if answer in _YES and len(state.pending) == 1:
            return state.pending[0]
        return None

    # ------------------------------------------------------------ postback

    def _postback(self, user_id: str, data: str, state: ConvState) -> Turn:
        lang = state.lang or state.seen_lang or "ja"
        pb = parse_postback(data)
        if pb is None:
            log.info("unknown postback data; showing the menu")
            return self.menu(lang)
        if pb.act == "intent":
            if pb.params["id"] not in self.catalog.by_id:
                return self.menu(lang)
            return self.answer(user_id, pb.params["id"], lang, state, score=100.0)
        if pb.act in ("more", "phones"):
            # The button names its answer, so it works when the state is gone (Redis down).
            if pb.params["i"] not in self.city.answers:
                return self.menu(lang)
            return self._followup(pb.act, lang, state, 100.0, (), answer_id=pb.params["i"])
        if pb.act == "switch":
            # S4: the last visible bubble becomes innocuous; the state goes too.
            self.store.forget_conversation(user_id)
            card = m.harmless_message(self.city.config.harmless_card, lang)
            return Turn([m.with_quick_reply(card, self._menu_button(lang))], "switch", sensitive=True, lang=lang)
        if pb.act == "notice":
            return Turn([self._notice(lang, closing=True)], "notice", sensitive=True, lang=lang)
        if pb.act == "answer":
            return self._survey_answer(user_id, pb.params, lang)
        if pb.act in settings_flow.ACTS:
            return settings_flow.settings(self, user_id, pb.act, pb.params, lang)
        return self.menu(lang)

    # ------------------------------------------------------------ follow, onboarding, settings

    def welcome(self, user_id: str) -> Turn:
        """After 友だち追加: who we are, then the language (each onboarding step is skippable)."""
        lang = self.store.get(user_id).lang or "ja"
        actions = [m.QuickAction(self.ui[f"lang_{code}"].ja, postback_data("lang", l=code),
                                 display=self.ui[f"lang_{code}"].ja) for code in ("ja", "en", "easy")]
        actions.append(self._qa("skip_button", lang, postback_data("areas")))
        msg = m.text_message(self.city.config.welcome.get(lang), actions)
        return Turn([msg], "welcome", lang=lang)

    def _survey_answer(self, user_id: str, params: Mapping[str, str], lang: str) -> Turn:
        from bot.broadcast import (
            campaigns,  # campaigns imports messages; imported here to keep dialogue light
        )

        try:
            following, spec = campaigns.record_answer(self.store.client, self.store.salt.decode(), user_id,
                                                      params["c"], int(params["q"]), int(params["o"]))
        except (ValueError, redis.RedisError):
            return self.menu(lang)
        if following is None and spec.survey.free_text:
            self.store.await_free_text(user_id, params["c"])
            msg = m.text_message(spec.survey.free_text_prompt, [self._qa("skip_button", lang, postback_data("menu"))])
        elif following is None:
            msg = m.text_message(self.ui["survey_thanks"].get(lang), self._menu_button(lang))
        else:
            msg = m.text_message(following.text)
            msg.quick_reply = campaigns.question_reply(params["c"], int(params["q"]) + 1, following)
        return Turn([msg], "survey", lang=lang)

    def forget(self, user_id: str) -> None:
        """Unfollow: everything stored about the resident goes (state, language, subscriptions)."""
        self.store.forget_user(user_id)
        if self.subscriptions is not None:
            try:
                self.subscriptions.remove_user(user_id)
            except redis.RedisError:
                log.warning("could not remove subscriptions on unfollow: redis unavailable")

    def non_text(self, user_id: str) -> Turn:
        lang = self.store.get(user_id).lang or "ja"
        return Turn([m.text_message(self.ui["non_text"].get(lang), self._menu_actions(lang))], "non_text", lang=lang)

    # ------------------------------------------------------------ building blocks

    def answer(self, user_id: str, intent_id: str, lang: str, state: ConvState,
               score: float = 100.0, candidates: Sequence[Candidate] = (),
               answer_id: str | None = None, also: str | None = None) -> Turn:
        """The answer to an intent. A crisis may come with its own answer (emergency_119 leads
        with 119) and with the topic the message also raised, offered as the next step."""
        intent = self.catalog.by_id[intent_id]
        answer = self.city.answers[answer_id or intent_id]
        if also is not None and not self.city.answers[also].desks:
            also = None  # greetings and thanks are no next step
        if answer.opens == "alert_settings" and self.subscriptions is not None:
            # 「設定を見る」「地域を変えたい」 from someone already subscribed: their current
            # choice, with the buttons that change it, says more than the introduction.
            try:
                subscribed = self.subscriptions.get(user_id) != Choice()
            except redis.RedisError:
                subscribed = False
            if subscribed:
                turn = settings_flow.settings(self, user_id, "settings", {}, lang)
                self.store.remember_answer(user_id, intent_id, sensitive=False, notice_shown=state.notice_shown)
                return Turn(turn.messages, "answer", intent_id, score, tuple(candidates), lang=lang)
        sensitive = intent.flow == "sensitive"
        crisis = intent.priority == "crisis"

        # S3: the talk-history notice, once per conversation. Crisis answers stay
        # short (§6), so there it is one tap away instead.
        show_notice = sensitive and not crisis and not state.notice_shown

        def build() -> list[Message]:
            out: list[Message] = [m.text_message(answer.text.get(lang))]
            if answer.desks:
                out.append(m.desks_message([self.city.desks[d] for d in answer.desks], lang, self.ui))
            if answer.triage and self.city.config.triage:
                out.append(m.triage_message(self.city.config.triage, lang))
            if show_notice:
                out.append(self._notice(lang))
            # The quick exit first, where a thumb finds it without scrolling (docs/safety.md S4).
            switch, notice = self._safety_actions(lang)
            actions: list[m.QuickAction] = [switch] if sensitive else []
            if also is not None:
                label = self.catalog.by_id[also].label.get(lang)
                actions.append(m.QuickAction(label, postback_data("intent", id=also), display=label))
            if answer.opens:
                actions += self._opens_actions(answer.opens, lang)
            if answer.show_menu:
                actions += self._menu_actions(lang)
            elif not (crisis and not sensitive):  # emergency: nothing else until they tap (§6)
                if answer.more_desks:
                    actions.append(self._qa("more_button", lang, postback_data("more", i=answer_id or intent_id)))
                if any(self.city.desks[d].phones for d in answer.desks + answer.more_desks):
                    actions.append(self._qa("phones_button", lang, postback_data("phones", i=answer_id or intent_id)))
                actions += self._menu_button(lang)
            if sensitive:
                actions.append(notice)
            m.with_quick_reply(out[-1], actions)
            return out

        out, wire = self._cached(("answer", intent_id, answer_id, also, lang, show_notice), build)
        self.store.remember_answer(user_id, intent_id, sensitive=sensitive,
                                   notice_shown=show_notice or state.notice_shown,
                                   lang=None if state.lang else lang, answer=answer_id)
        return Turn(out, "answer", intent_id, score, tuple(candidates), sensitive=sensitive, lang=lang, wire=wire)

    def _followup(self, kind: str, lang: str, state: ConvState, score: float,
                  candidates: Sequence[Candidate], answer_id: str | None = None) -> Turn:
        """「ほかには？」「電話番号は？」 about an answer: the one a button names, else the last one."""
        answer_id = answer_id or state.last_answer or state.last_intent
        if answer_id is None:
            msg = m.text_message(self.ui["no_context"].get(lang), self._menu_actions(lang))
            return Turn([msg], "followup", None, score, tuple(candidates), lang=lang)
        intent_id = self.catalog.crisis_answers.get(answer_id, answer_id)
        answer = self.city.answers[answer_id]
        sensitive = self.catalog.by_id[intent_id].flow == "sensitive"
        tail = self._menu_button(lang) + (self._safety_actions(lang) if sensitive else [])
        if kind == "more":
            if not answer.more_desks:
                out: list[Message] = [m.text_message(self.ui["no_more"].get(lang))]
            else:
                out = [m.text_message(self.ui["more_title"].get(lang)),
                       m.desks_message([self.city.desks[d] for d in answer.more_desks], lang, self.ui)]
            # the phone list stays one tap away after the other desks
            if any(self.city.desks[d].phones for d in answer.desks + answer.more_desks):
                tail = [self._qa("phones_button", lang, postback_data("phones", i=answer_id))] + tail
        else:
            lines = [self.ui["phones_title"].get(lang)]
            listed: set[str] = set()  # one line per number (#9110 is on several desks)
            for desk_id in answer.desks + answer.more_desks:
                desk = self.city.desks[desk_id]
                for phone in desk.phones:
                    if phone.tel_uri in listed:
                        continue
                    listed.add(phone.tel_uri)
                    # the label on its own line: desk names often end in brackets already
                    note = f"\n  {phone.label.get(lang)}" if phone.label else ""
                    lines.append(f"・{desk.name.get(lang)}\n  {phone.shown}{note}")
            out = [m.text_message("\n".join(lines))]
        m.with_quick_reply(out[-1], tail)
        return Turn(out, "followup", intent_id, score, tuple(candidates), sensitive=sensitive, lang=lang)

    def _clarify(self, user_id: str, candidates: Sequence[Candidate], lang: str, score: float) -> Turn:
        options = [c.intent for c in candidates[:3]]
        self.store.remember_pending(user_id, options)
        actions = []
        for intent_id in options:
            label = self.catalog.by_id[intent_id].label.get(lang)
            actions.append(m.QuickAction(label, postback_data("intent", id=intent_id), display=label))
        actions += self._menu_button(lang)
        msg = m.text_message(self.ui["clarify"].get(lang), actions)
        return Turn([msg], "clarify", None, score, tuple(candidates), lang=lang)

    def _fallback(self, lang: str, score: float, candidates: Sequence[Candidate]) -> Turn:
        fallback = self.city.config.fallback

        def build() -> list[Message]:
            out: list[Message] = [
                m.text_message(fallback.text.get(lang)),
                m.desks_message([self.city.desks[d] for d in fallback.desks], lang, self.ui),
            ]
            m.with_quick_reply(out[-1], self._menu_actions(lang))
            return out

        out, wire = self._cached(("fallback", lang), build)
        return Turn(out, "fallback", None, score, tuple(candidates), lang=lang, wire=wire)

    def menu(self, lang: str) -> Turn:
        out, wire = self._cached(("menu", lang), lambda: [
            m.text_message(self.ui["menu_title"].get(lang), self._menu_actions(lang))])
        return Turn(out, "menu", lang=lang, wire=wire)

    def _notice(self, lang: str, closing: bool = False) -> Message:
        card = m.card_message(self.ui["notice_title"].get(lang), self.ui["notice"].get(lang))
        if closing:
            m.with_quick_reply(card, self._safety_actions(lang)[:1] + self._menu_button(lang))
        return card

    def _qa(self, key: str, lang: str, data: str, display: bool = True) -> m.QuickAction:
        label = self.ui[key].get(lang)
        return m.QuickAction(label, data, display=label if display else None)

    def _menu_button(self, lang: str) -> list[m.QuickAction]:
        return [self._qa("menu_button", lang, postback_data("menu"))]

    def _menu_actions(self, lang: str) -> list[m.QuickAction]:
        return [m.QuickAction(item.label.get(lang), postback_data("intent", id=item.intent),
                              display=item.label.get(lang))
                for item in self.city.config.menu]

    def _opens_actions(self, opens: str, lang: str) -> list[m.QuickAction]:
        if opens == "language":
            return [m.QuickAction(self.ui[f"lang_{code}"].ja, postback_data("lang", l=code),
                                  display=self.ui[f"lang_{code}"].ja) for code in ("ja", "en", "easy")]
        if opens == "alert_settings":
            return [self._qa("change_area_button", lang, postback_data("areas")),
                    self._qa("change_topics_button", lang, postback_data("topics")),
                    self._qa("settings_button", lang, postback_data("settings"))]
        return [self._qa("stop_button", lang, postback_data("stop")),
                self._qa("settings_button", lang, postback_data("settings"))]

    def _safety_actions(self, lang: str) -> list[m.QuickAction]:
        # No display text: the talk history must not say what was hidden.
        return [self._qa("switch_button", lang, postback_data("switch"), display=False),
                self._qa("notice_button", lang, postback_data("notice"), display=False)]
