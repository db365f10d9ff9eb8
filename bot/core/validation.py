"""Shared checks for what staff write (alerts, campaigns)."""

from __future__ import annotations

from pydantic import ValidationError

from bot.core import policy


def neutral(text: str) -> str:
    """Text that shows on lock screens and buttons must not name a sensitive topic (S2)."""
    word = policy.forbidden_label_word(text)
    if word:
        raise ValueError(f"{text!r} shows on lock screens and buttons; it must not contain {word!r} "
                         "(docs/safety.md S2)")
    return text


def every_error(exc: ValidationError) -> str:
    """Every problem of a request, as 'field.path: message' joined by '; ' for staff: a
    file with three mistakes is fixed in one go, not in three runs."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())