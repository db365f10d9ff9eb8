"""Safety rules that content may not override (docs/safety.md).

These live in code, not YAML, on purpose: a content edit must not be able to
weaken them. The loader and the tests apply them to every city and language.
"""

from __future__ import annotations

# S2: labels, altText and previews never name the topic.
FORBIDDEN_LABEL_WORDS: tuple[str, ...] = (
    "DV", "ＤＶ", "暴力", "性被害", "自殺", "被害者", "死",
    "violence", "suicide", "victim", "abuse", "rape", "domestic",
)

# §5.1 never-say list: victim blaming and minimising, in Japanese and English.
NEVER_SAY: tuple[str, ...] = (
    # 熊本市's rules for responding to a DV disclosure (verbatim)
    "あなたにも問題がある", "がまんが足りない", "我慢が足りない", "愛情でやっている",
    # project additions
    "なぜ逃げなかった", "どうして断らなかった", "どうしてもっと早く相談しなかった",
    "そんな服装", "そんな時間だった", "お酒を飲んでいたなら仕方ない",
    "相手を怒らせたのでは", "相手にも事情がある", "家族なんだから",
    "子どものために我慢", "子供のために我慢", "許してあげたら",
    "大げさ", "大袈裟", "気にしすぎ", "よくあること", "それくらいで",
    "だまされる方が悪い", "騙される方が悪い", "不注意でしたね", "運が悪かったですね",
    "甘え", "気の持ちよう", "頑張って", "がんばって",
    "前科者", "ムショ帰り", "不幸にして罪を犯した人",
    # English equivalents
    "you are partly to blame", "it's partly your fault", "you should have left",
    "why didn't you leave", "why didn't you say no", "why didn't you tell anyone sooner",
    "what were you wearing", "you were drinking", "you must have provoked",
    "they have their reasons", "for the children's sake", "forgive them",
    "overreacting", "exaggerating", "it happens all the time", "it's not a big deal",
    "your own fault", "you should have been more careful", "bad luck",
    "just try harder", "cheer up", "ex-convict", "jailbird",
)


def _first_in(text: str, phrases: tuple[str, ...]) -> str | None:
    folded = text.casefold()
    return next((p for p in phrases if p.casefold() in folded), None)


def forbidden_label_word(text: str) -> str | None:
    """The first forbidden word in a label-like text, or None."""
    return _first_in(text, FORBIDDEN_LABEL_WORDS)


def never_say_phrase(text: str) -> str | None:
    return _first_in(text, NEVER_SAY)


# docs/safety.md R1: reentry answers never ask about the offence, its type or the sentence.
OFFENCE_QUESTIONS: tuple[str, ...] = (
    "何をした", "何をしたのか", "罪名", "罪状", "刑期", "どんな罪", "何の罪", "前科は", "前科が何",
    "どんな事件", "なぜ捕ま", "what did you do", "what was your crime", "what crime", "your offence",
    "your offense", "how long were you", "why were you arrested", "your sentence",
)


def offence_question(text: str) -> str | None:
    return _first_in(text, OFFENCE_QUESTIONS)
