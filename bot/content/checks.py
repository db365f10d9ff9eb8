"""Checks that span content files: intents against each other, desks, rich menus, the never-say list.

The field-level rules live in bot.content.schema; bot.content.loader runs these while loading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.content.schema import Desk, DeskFile, Intent, OutOfScopeFile, RichMenu, Text
from bot.content.yamldoc import Problem, _Doc
from bot.core import policy
from bot.core.normalize import Normalizer
from bot.core.postback import parse_postback

STALE_AFTER = dt.timedelta(days=365)


def _check_intents(intents: list[tuple[Intent, _Doc, int]], oos: OutOfScopeFile | None,
                   oos_doc: _Doc | None, normalize: Normalizer) -> None:
    seen_ids: dict[str, str] = {}
    owner: dict[str, tuple[str, str]] = {}  # normalised example -> (intent id, where)
    for intent, d, i in intents:
        if intent.id in seen_ids:
            d.problem(("intents", i, "id"), f"duplicate intent id {intent.id!r} (also in {seen_ids[intent.id]})")
        seen_ids[intent.id] = d.rel
        own: set[str] = set()
        for j, example in enumerate(intent.examples):
            key = normalize(example)
            loc = ("intents", i, "examples", j)
            if not key:
                d.problem(loc, f"example {example!r} is empty after normalisation")
                continue
            if key in owner and owner[key][0] != intent.id:
                d.problem(loc, f"example {example!r} is also claimed by {owner[key][0]!r} ({owner[key][1]})")
            elif key in own:
                d.problem(loc, f"example {example!r} is repeated", severity="warning")
            owner.setdefault(key, (intent.id, f"{d.rel}:{d.line(loc)}"))
            own.add(key)
        for j, negative in enumerate(intent.negative_examples):
            if normalize(negative) in own:
                d.problem(("intents", i, "negative_examples", j),
                          f"negative example {negative!r} is also one of this intent's examples")
        for j, keyword in enumerate(intent.keywords):
            if len(normalize(keyword)) < 2 and not keyword.isascii():
                d.problem(("intents", i, "keywords", j), f"keyword {keyword!r} is too short to be a strong cue")
    if oos and oos_doc:
        for j, example in enumerate(oos.examples):
            key = normalize(example)
            if key in owner:
                oos_doc.problem(("examples", j), f"out-of-scope example {example!r} is an example of {owner[key][0]!r}")


def _load_desks(path: Path, doc: Any, national: Mapping[str, Desk], today: dt.date,
                required: bool, problems: list[Problem]) -> dict[str, Desk]:
    if not path.is_file():
        if required:
            problems.append(Problem(str(path.name), "", "file is missing"))
        return {}
    d: _Doc = doc(path)
    parsed = d.parse(DeskFile)
    if not parsed:
        return {}
    desks: dict[str, Desk] = {}
    for i, desk in enumerate(parsed.desks):
        if desk.id in desks or desk.id in national:
            d.problem(("desks", i, "id"), f"duplicate desk id {desk.id!r}")
        desks[desk.id] = desk
        if today - desk.last_checked > STALE_AFTER:
            d.problem(("desks", i, "last_checked"),
                      f"{desk.id}: last checked {desk.last_checked}, over a year ago: re-confirm before launch",
                      severity="warning")
        if desk.last_checked > today:
            d.problem(("desks", i, "last_checked"), f"{desk.id}: last_checked is in the future")
        for field_name in ("about", "hours"):
            text = getattr(desk, field_name)
            if text:
                _never_say(d, ("desks", i, field_name), text)
    return desks


def _check_richmenu(d: _Doc, menu: RichMenu, city_dir: Path, intents: Mapping[str, Intent]) -> None:
    if not (city_dir / menu.image).is_file():
        d.problem(("richmenu", "image"), f"image {menu.image!r} not found next to richmenu.yaml")
    for n, button in enumerate(menu.buttons):
        if button.postback is None:
            continue
        postback = parse_postback(button.postback)
        if postback is None:
            d.problem(("richmenu", "buttons", n, "postback"),
                      f"{button.postback!r} is not postback data the bot understands")
        elif postback.act == "intent" and postback.params["id"] not in intents:
            d.problem(("richmenu", "buttons", n, "postback"), f"unknown intent {postback.params['id']!r}")


def _never_say(d: _Doc, loc: tuple, text: Text) -> None:
    for value in text.values():
        phrase = policy.never_say_phrase(value)
        if phrase:
            d.problem(loc, f"contains {phrase!r}, which is on the never-say list (docs/safety.md §5.1)")
