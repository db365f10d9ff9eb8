"""Shared checks for what staff write (alerts, campaigns)."""

from __future__ import annotations

import re
import unicodedata

from pydantic import ValidationError

from bot.core import policy

# Characters that show as nothing: with them 「D\u200bV相談」 would slip past the neutral-word
# check, and a title of only these would send residents a blank card.
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u034f\u180e]")


def clean(text: str) -> str:
    """What staff typed, as residents will see it: NFC, invisible characters removed, white
    space trimmed. Applied before every other check, so a blank or disguised text fails."""
    if not isinstance(text, str):
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", text)).strip()


def neutral(text: str) -> str:
    """Text that shows on lock screens and buttons must not name a sensitive topic (S2)."""
    word = policy.forbidden_label_word(unicodedata.normalize("NFKC", text))
    if word:
        raise ValueError(f"「{text}」はロック画面の通知やボタンに出るため、「{word}」を含められません"
                         "（相談の話題が周りの人に見えないように）")
    return text


# What staff read: pydantic's error types in their words (the field stays named as in the
# API, so the JSON user and the console user can find it).
_JA = {
    "missing": "入力してください",
    "string_too_short": "入力してください",
    "too_short": "少なくとも{min_length}つ必要です",
    "string_too_long": "{max_length}文字以内にしてください",
    "too_long": "{max_length}つまでです",
    "bool_type": "true か false で指定してください",
    "string_type": "文字で入力してください",
    "list_type": "一覧（配列）で指定してください",
    "extra_forbidden": "この項目はありません",
    "string_pattern_mismatch": "形式が正しくありません",
    "greater_than": "{gt}より大きい数にしてください",
    "float_parsing": "数で入力してください",
    "model_type": "オブジェクトで指定してください",
}


def _message(error: dict) -> str:
    template = _JA.get(error["type"])
    if template is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return template.format(**(error.get("ctx") or {}))


def every_error(exc: ValidationError) -> str:
    """Every problem of a request, as 'field.path: message' joined by '; ' for staff: a
    file with three mistakes is fixed in one go, not in three runs."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {_message(dict(e))}" for e in exc.errors())
