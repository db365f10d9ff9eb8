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


def first_error(exc: ValidationError) -> str:
    """The first problem of a request, as 'field.path: message' for staff."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"
