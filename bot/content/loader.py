"""Load intents/ and content/, validate everything, and say exactly what is wrong.

Every problem names its file, key path and line. The bot refuses to start when
any error is found (`load_catalog` raises); `python -m bot check` prints them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.content.checks import _check_intents, _check_richmenu, _load_desks, _never_say
from bot.content.schema import (
    Answer,
    AnswerFile,
    CityFile,
    CrisisFile,
    CrisisKind,
    CrisisTrainingFile,
    Desk,
    FollowupFile,
    Intent,
    IntentFile,
    OutOfScopeFile,
    RichMenu,
    RichMenuFile,
    SynonymFile,
    Text,
    ThresholdFile,
    Thresholds,
    UiFile,
    tel_digits,
)
from bot.content.yamldoc import ContentError, M, Problem, _Doc
from bot.core import policy
from bot.core.normalize import Normalizer

# Interface strings the code uses (content/national/ui.yaml must define them all).
UI_KEYS = (
    "clarify", "menu_title", "menu_button", "more_button", "phones_button",
    "switch_button", "notice_button", "notice_title", "notice", "call_button", "web_button",
    "chat_button", "hours", "hours_unknown", "hours_unknown_by_phone", "no_phone", "no_phone_chat", "checked",
    "desks_alt",
    "phones_title", "more_title", "no_context", "no_more", "chat_no_history", "non_text", "lang_ja", "lang_en",
    "lang_easy", "skip_button", "done_button", "onboard_area", "onboard_topics", "settings_summary",
    "settings_area", "settings_topics", "settings_none", "settings_button", "change_area_button",
    "change_topics_button", "settings_unavailable", "stop_button", "survey_thanks",
    "alert_method", "alert_where_when", "alert_countermeasures", "alert_desk", "alert_share",
    "settings_mode", "mode_now", "mode_digest", "change_mode_button", "mode_changed_digest", "digest_title",
)


def leading_number(answer: Answer, desks: Mapping[str, Desk]) -> str | None:
    """The number a resident sees first in an answer: its first desk's first phone, as dialled."""
    first = desks.get(answer.desks[0]) if answer.desks else None
    return tel_digits(first.phones[0].shown) if first and first.phones else None


@dataclass(frozen=True)
class City:
    id: str
    config: CityFile
    desks: Mapping[str, Desk]  # the city's own and the national ones
    answers: Mapping[str, Answer]
    richmenu: RichMenu
    folder: Path
    ui: Mapping[str, Text] = field(default_factory=dict)  # the national interface strings (alert cards)


@dataclass(frozen=True)
class Catalog:
    intents: tuple[Intent, ...]
    synonyms: Mapping[str, list[str]]
    out_of_scope: tuple[str, ...]
    followups: Mapping[Literal["phone", "more"], list[str]]
    thresholds: Thresholds
    crisis: CrisisFile
    crisis_training: Mapping[str, tuple[str, ...]]  # the crisis model's own examples, by kind
    cities: Mapping[str, City]
    ui: Mapping[str, Text]
    by_id: Mapping[str, Intent] = field(init=False)
    # a crisis kind's own answer id (emergency_119, or the intent's own) -> the intent it answers
    crisis_answers: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {i.id: i for i in self.intents})
        object.__setattr__(self, "crisis_answers", {k.answer: k.intent for k in self.crisis.kinds.values()})

    def city(self, city_id: str) -> City:
        try:
            return self.cities[city_id]
        except KeyError:
            raise KeyError(f"unknown city {city_id!r}; known: {', '.join(sorted(self.cities))}") from None



# ---------------------------------------------------------------- loading


def load(root: Path, today: dt.date | None = None) -> tuple[Catalog | None, list[Problem]]:
    """Read and check all content under root; return the catalog (None on errors) and every problem."""
    today = today or dt.date.today()
    problems: list[Problem] = []

    def doc(path: Path) -> _Doc:
        return _Doc(path, str(path.relative_to(root)), problems)

    intents_dir, content_dir = root / "intents", root / "content"
    special = {"_synonyms.yaml", "_out_of_scope.yaml", "_followups.yaml", "_thresholds.yaml", "_crisis.yaml",
               "_crisis_training.yaml"}
    for name in sorted(special):
        if not (intents_dir / name).is_file():
            problems.append(Problem(f"intents/{name}", "", "file is missing"))

    intents: list[tuple[Intent, _Doc, int]] = []
    for path in sorted(intents_dir.glob("*.yaml")):
        if path.name in special:
            continue
        d = doc(path)
        parsed = d.parse(IntentFile)
        if parsed:
            intents.extend((intent, d, i) for i, intent in enumerate(parsed.intents))
    for path in sorted(intents_dir.glob("*.yml")):
        problems.append(Problem(str(path.relative_to(root)), "", "use the .yaml extension"))

    def special_file(name: str, model: type[M]) -> tuple[M | None, _Doc | None]:
        path = intents_dir / name
        if not path.is_file():
            return None, None
        d = doc(path)
        return d.parse(model), d

    synonyms, _ = special_file("_synonyms.yaml", SynonymFile)
    oos, oos_doc = special_file("_out_of_scope.yaml", OutOfScopeFile)
    followups, _ = special_file("_followups.yaml", FollowupFile)
    thresholds, _ = special_file("_thresholds.yaml", ThresholdFile)
    crisis, crisis_doc = special_file("_crisis.yaml", CrisisFile)
    crisis_training, training_doc = special_file("_crisis_training.yaml", CrisisTrainingFile)

    normalize = Normalizer(synonyms.synonyms if synonyms else {})
    _check_intents(intents, oos, oos_doc, normalize)
    if crisis_training and training_doc:
        for kind, texts in crisis_training.examples.items():
            for j, text in enumerate(texts):
                if not normalize(text):
                    training_doc.problem(("examples", kind, j), f"example {text!r} is empty after normalisation")

    ui_doc = doc(content_dir / "national" / "ui.yaml") if (content_dir / "national" / "ui.yaml").is_file() else None
    ui = ui_doc.parse(UiFile) if ui_doc else None
    if ui_doc is None:
        problems.append(Problem("content/national/ui.yaml", "", "file is missing"))
    elif ui:
        for key in UI_KEYS:
            if key not in ui.ui:
                ui_doc.problem(("ui",), f"missing interface string {key!r}")
        for key, ui_text in ui.ui.items():
            _never_say(ui_doc, ("ui", key), ui_text)

    national = _load_desks(content_dir / "national" / "desks.yaml", doc, {}, today, required=True, problems=problems)
    intent_ids = {i.id: i for i, _, _ in intents}
    for intent, d, i in intents:
        if intent.guard and intent.guard.instead not in intent_ids:
            d.problem(("intents", i, "guard", "instead"), f"unknown intent {intent.guard.instead!r}")
    crisis_answers: dict[str, CrisisKind] = {}
    if crisis and crisis_doc:
        for kind, spec in crisis.kinds.items():
            target = intent_ids.get(spec.intent)
            if target is None or target.priority != "crisis":
                crisis_doc.problem(("kinds", kind, "intent"), f"{spec.intent!r} is not a crisis intent")
            elif spec.answer != spec.intent and spec.answer in intent_ids:
                crisis_doc.problem(("kinds", kind, "answer"), f"{spec.answer!r} is another intent's answer")
            else:
                crisis_answers[spec.answer] = spec
    cities: dict[str, City] = {}
    city_dirs = sorted(p.parent for p in content_dir.glob("*/city.yaml"))
    if not city_dirs:
        problems.append(Problem("content", "", "no city profile (content/<city>/city.yaml)"))
    for city_dir in city_dirs:
        city = _load_city(city_dir, doc, national, intent_ids, crisis_answers, today, problems, ui.ui if ui else {})
        if city:
            cities[city.id] = city

    if any(p.severity == "error" for p in problems):
        return None, problems
    assert synonyms and oos and followups and thresholds and ui and crisis and crisis_training
    catalog = Catalog(
        intents=tuple(i for i, _, _ in intents),
        synonyms=synonyms.synonyms,
        out_of_scope=tuple(oos.examples),
        followups=followups.followups,
        thresholds=thresholds.thresholds,
        crisis=crisis,
        crisis_training={kind: tuple(texts) for kind, texts in crisis_training.examples.items()},
        cities=cities,
        ui=ui.ui,
    )
    return catalog, problems


def load_catalog(root: Path, today: dt.date | None = None) -> Catalog:
    catalog, problems = load(root, today)
    if catalog is None:
        raise ContentError(problems)
    return catalog


def _load_city(city_dir: Path, doc: Any, national: Mapping[str, Desk], intents: Mapping[str, Intent],
               crisis_answers: Mapping[str, CrisisKind], today: dt.date, problems: list[Problem],
               ui: Mapping[str, Text]) -> City | None:
    rel = city_dir.name
    city_doc: _Doc = doc(city_dir / "city.yaml")
    config = city_doc.parse(CityFile)
    own = _load_desks(city_dir / "desks.yaml", doc, national, today, required=False, problems=problems)
    desks = {**national, **own}
    # Answers may be split by theme: answers.yaml, answers_<theme>.yaml ...
    answer_paths = sorted(city_dir.glob("answers*.yaml"))
    if not answer_paths:
        problems.append(Problem(f"content/{rel}/answers.yaml", "", "file is missing"))
        return None
    answers: dict[str, Answer] = {}
    answer_docs: dict[str, _Doc] = {}
    complete = True
    for path in answer_paths:
        answers_doc: _Doc = doc(path)
        parsed_file = answers_doc.parse(AnswerFile)
        if parsed_file is None:
            complete = False
            continue
        for intent_id, answer in parsed_file.answers.items():
            if intent_id in answers:
                answers_doc.problem(("answers", intent_id),
                                    f"intent {intent_id!r} is answered twice (also in {answer_docs[intent_id].rel})")
            answers[intent_id] = answer
            answer_docs[intent_id] = answers_doc
    menu_path = city_dir / "richmenu.yaml"
    if not menu_path.is_file():
        problems.append(Problem(f"content/{rel}/richmenu.yaml", "", "file is missing"))
        return None
    menu_doc: _Doc = doc(menu_path)
    menu = menu_doc.parse(RichMenuFile)
    if config is None or not complete or menu is None:
        return None
    _check_richmenu(menu_doc, menu.richmenu, city_dir, intents)
    if config.id != rel:
        city_doc.problem(("id",), f"city id {config.id!r} must match its folder {rel!r}")

    for intent_id in [*intents, *crisis_answers]:
        if intent_id not in answers:
            problems.append(Problem(f"{Path(city_doc.rel).parent}/answers.yaml", "answers",
                                    f"no answer for {'crisis answer' if intent_id in crisis_answers else 'intent'} "
                                    f"{intent_id!r} in city {rel!r}"))
    for intent_id, answer in answers.items():
        answers_doc = answer_docs[intent_id]
        loc = ("answers", intent_id)
        # A crisis kind's own answer (emergency_119) is checked as its intent's answer.
        kind = crisis_answers.get(intent_id)
        intent = intents.get(kind.intent if kind else intent_id)
        if intent is None:
            answers_doc.problem(loc, f"answer for unknown intent {intent_id!r}")
            continue
        for key in ("desks", "more_desks"):
            for j, desk_id in enumerate(getattr(answer, key)):
                if desk_id not in desks:
                    answers_doc.problem(loc + (key, j), f"unknown desk {desk_id!r}")
                elif not desks[desk_id].reachable:
                    answers_doc.problem(loc + (key, j), f"desk {desk_id!r} has no phone, url or chat_url to show")
        if intent.priority == "crisis":
            first = desks.get(answer.desks[0]) if answer.desks else None
            if first is None or not first.emergency:
                answers_doc.problem(loc + ("desks",), "a crisis answer must list 110 or 119 first (docs/crisis.md)")
            elif kind and kind.number and leading_number(answer, desks) != kind.number:
                answers_doc.problem(loc + ("desks",),
                                    f"this crisis answer must list {kind.number} first (docs/crisis.md)")
        _never_say(answers_doc, loc + ("text",), answer.text)
        if intent_id.startswith(("reentry_", "hire_ex_offender")):
            for value in answer.text.values():
                phrase = policy.offence_question(value)
                if phrase:
                    answers_doc.problem(loc + ("text",),
                                        f"reentry answers never ask about the offence ({phrase!r}, R1)")
        if answer.triage and not config.triage:
            answers_doc.problem(loc + ("triage",), f"city {rel!r} has no triage menu in city.yaml")
        for value in answer.text.values():
            if len(value.encode("utf-16-le")) // 2 > 5000:
                answers_doc.problem(loc + ("text",), "text is over LINE's 5,000 UTF-16 units")

    for j, item in enumerate(config.menu):
        if item.intent not in intents:
            city_doc.problem(("menu", j, "intent"), f"unknown intent {item.intent!r}")
    for topic in ("fraud", "suspicious", "missing", "emergency", "safety"):
        desk_id = config.alert_desks.get(topic)
        if desk_id is None:
            city_doc.problem(("alert_desks",), f"no desk for alert topic {topic!r}")
        elif desk_id not in desks or not desks[desk_id].phones:
            city_doc.problem(("alert_desks", topic), f"desk {desk_id!r} is unknown or has no phone")
    for j, need in enumerate(config.triage.needs if config.triage else []):
        if need.intent not in intents:
            city_doc.problem(("triage", "needs", j, "intent"), f"unknown intent {need.intent!r}")
    for j, desk_id in enumerate(config.fallback.desks):
        if desk_id not in desks or not desks[desk_id].reachable:
            city_doc.problem(("fallback", "desks", j), f"unknown or unreachable desk {desk_id!r}")
    _never_say(city_doc, ("fallback", "text"), config.fallback.text)
    for key in ("title", "body"):
        _never_say(city_doc, ("harmless_card", key), getattr(config.harmless_card, key))
        word = next(filter(None, (policy.forbidden_label_word(v)
                                  for v in getattr(config.harmless_card, key).values())), None)
        if word:
            city_doc.problem(("harmless_card", key), f"the harmless card must not mention {word!r}")
    return City(id=rel, config=config, desks=desks, answers=answers, richmenu=menu.richmenu,
                folder=city_dir, ui=ui)

