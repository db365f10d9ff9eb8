"""Fold the many ways residents type the same Japanese into one form.

NFKC (half-width kana, full-width ASCII), case, katakana → hiragana, long-vowel
marks (all folded to ー; dropping them would turn ストーカー into すとか, which
hides inside ですとか), punctuation, emoji and white space (a single space is
kept between latin words so English keeps word boundaries), repeated characters,
then synonyms.
The same function is applied to examples at load time and to messages at match
time, so both sides always agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_KATA_START, _KATA_END, _KANA_SHIFT = 0x30A1, 0x30F6, 0x60
# Marks that stretch a sound; all become ー.
_STRETCH = {"ー", "〜", "~", "～", "ｰ", "‐", "－", "—", "―"}
_REPEATS = re.compile(r"(.)\1{2,}")
_SPACES = re.compile(r"\s+")
_LATIN_GAP = re.compile(r"(?<=[a-z0-9]) (?=[a-z0-9])")


def _keep(ch: str) -> bool:
    # Letters (kana, kanji, latin, 々) and digits carry meaning; the rest
    # (punctuation, symbols, emoji, spaces) is noise for intent matching.
    return unicodedata.category(ch)[0] in "LN"


# The few emoji that carry a crisis on their own (「🆘」 alone is a plea); every other
# emoji is noise and goes with the punctuation.
_EMOJI_WORDS = str.maketrans({"🆘": " sos ", "🚑": "救急車", "🚒": "消防車", "🔥": "火", "🔪": "刃物"})


def fold(text: str) -> str:
    """Normalise without synonyms."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text.translate(_EMOJI_WORDS)).lower())
    out = []
    for ch in text:
        if ch in _STRETCH:
            out.append("ー")
            continue
        code = ord(ch)
        if _KATA_START <= code <= _KATA_END:
            ch = chr(code - _KANA_SHIFT)
        if _keep(ch) or ch == " ":
            out.append(ch)
    # Spaces survive only between latin letters/digits ("is following", not "詐欺 かも").
    joined = _LATIN_GAP.sub("\0", "".join(out)).replace(" ", "").replace("\0", " ")
    return _REPEATS.sub(r"\1\1", joined).strip()


def contains(text: str, cue: str) -> bool:
    """Whether a normalised cue occurs in normalised text; latin cues only as whole words
    ("dv" is in 「dvされた」 but not in "dvd" or "advice")."""
    return Cue(cue).found_in(text)


class Cue:
    """A normalised cue, compiled once: `contains` for a cue that is tested on every message."""

    __slots__ = ("text", "_word")

    def __init__(self, cue: str) -> None:
        self.text = cue
        self._word = re.compile(rf"(?<![a-z0-9]){re.escape(cue)}(?![a-z0-9])") if cue.isascii() else None

    def found_in(self, text: str) -> bool:
        if self._word is None:
            return self.text in text
        return self.text in text and self._word.search(text) is not None


class Normalizer:
    """fold() plus a synonym map applied longest variant first."""

    def __init__(self, synonyms: Mapping[str, list[str]] | None = None) -> None:
        table: dict[str, str] = {}
        for canonical, variants in (synonyms or {}).items():
            target = fold(canonical)
            for variant in variants:
                key = fold(variant)
                if key and key != target:
                    table[key] = target
        self._table = table
        def pattern(key: str) -> str:
            # Latin variants match whole words only, like contains().
            return rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])" if key.isascii() else re.escape(key)

        self._pattern = (
            re.compile("|".join(pattern(k) for k in sorted(table, key=len, reverse=True)))
            if table
            else None
        )

    def __call__(self, text: str) -> str:
        folded = fold(text)
        if self._pattern is None:
            return folded
        return self._pattern.sub(lambda m: self._table[m.group(0)], folded)
