"""Schemas for intents/ and content/: wrong content cannot be loaded.

Field-level rules live here (types, formats, neutral labels, phone syntax);
rules that span files (every intent answered, desks exist) live in loader.py.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from bot.core import policy
from bot.core.clock import within

LANGS = ("ja", "en", "easy")
Lang = Literal["ja", "en", "easy"]

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Url = Annotated[str, Field(pattern=r"^https?://\S+$")]
NonEmpty = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in Japanese (required), English and やさしい日本語."""

    ja: NonEmpty
    en: NonEmpty | None = None
    easy: NonEmpty | None = None

    def get(self, lang: str) -> str:
        if lang == "en":
            return self.en or self.ja
        if lang == "easy":
            return self.easy or self.ja
        return self.ja

    def values(self) -> list[str]:
        return [v for v in (self.ja, self.en, self.easy) if v]


def _neutral(label: Text) -> Text:
    for value in label.values():
        word = policy.forbidden_label_word(value)
        if word:
            raise ValueError(f"label {value!r} contains {word!r}; labels must stay neutral (docs/safety.md S2)")
        if len(value) > 20:
            raise ValueError(f"label {value!r} is longer than 20 characters (LINE action label limit)")
    return label


Label = Annotated[Text, AfterValidator(_neutral)]


# ---------------------------------------------------------------- intents


def _pattern(value: str) -> str:
    """A regular expression over *normalised* text (bot.core.normalize: lower case, katakana
    folded to hiragana, no punctuation or spaces except between latin words): a pattern
    with upper-case latin letters or katakana could never match, so it is refused."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
    if any("A" <= ch <= "Z" or "\u30a1" <= ch <= "\u30f6" for ch in re.sub(r"\\.", "", value)):
        raise ValueError(f"pattern {value!r} has upper-case latin or katakana: messages are matched after "
                         "normalisation (lower case, hiragana), so write 'dv', 'かっと'")
    return value


Pattern = Annotated[str, Field(min_length=1), AfterValidator(_pattern)]


class Guard(Strict):
    """Positive evidence an intent needs before it may be answered. Where one wrong
    answer is far worse than another (a DV victim reading the answer written for
    abusers), the classifier is not trusted alone: every group in `all_of` must find
    a pattern, and no pattern of `none_of` may be found. Otherwise the intent scores
    nothing and `instead` gets its score."""

    all_of: list[list[Pattern]] = Field(min_length=1)
    none_of: list[Pattern] = []
    instead: Id


class Intent(Strict):
    id: Id
    priority: Literal["crisis", "normal"] = "normal"
    flow: Literal["normal", "sensitive"] = "normal"
    label: Label
    keywords: list[NonEmpty] = []
    # Keywords that need a pattern (a partner word with a passive harm verb): each one
    # found counts like a keyword. Regular expressions over normalised text.
    patterns: list[Pattern] = []
    examples: list[NonEmpty] = Field(min_length=1)
    negative_examples: list[NonEmpty] = []
    guard: Guard | None = None
    # false: never offered as the next step beside another answer (a crisis card's topic
    # button): greetings, thanks, the menu and settings help no one in danger
    next_step: bool = True


class IntentFile(Strict):
    intents: list[Intent] = Field(min_length=1)


class SynonymFile(Strict):
    synonyms: dict[NonEmpty, list[NonEmpty]]


class OutOfScopeFile(Strict):
    examples: list[NonEmpty] = Field(min_length=1)


class FollowupFile(Strict):
    followups: dict[Literal["phone", "more"], list[NonEmpty]]


class Thresholds(Strict):
    confident: float = Field(ge=0, le=100)
    margin: float = Field(ge=0, le=100)
    floor: float = Field(ge=0, le=100)
    crisis_strong: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.floor <= self.confident:
            raise ValueError("floor must not be above confident")
        return self


class ThresholdFile(Strict):
    thresholds: Thresholds


# ---------------------------------------------------------------- the crisis layer (bot/understanding/crisis.py)

CrisisKindId = Literal["fire_medical", "danger", "suicide"]


def _raw_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
    return value


class CrisisKind(Strict):
    intent: Id  # the crisis intent it answers (the JSON contract's `intent`)
    answer: Id  # the answer each city gives (emergency_119 leads with 119)
    number: Literal["110", "119"] | None = None  # the number the answer must list first


class CrisisCue(Strict):
    name: Id  # what the evaluator reports (fire, gas, medical, ...)
    kind: CrisisKindId
    patterns: list[Pattern] = Field(min_length=1)
    # Found in the same clause, these make the cue not count: a fire drill, 死ぬほど眠い.
    unless: list[Pattern] = []
    # A cue that names no danger of its own (「助けて」): when the message is clearly a
    # sensitive topic whose answer leads with this kind's number (DV: 110 first, with
    # the talk-history notice and quick exit), that answer is given instead.
    topic_first: bool = False


class CrisisTrainingFile(Strict):
    """The crisis model's own examples by kind; `none` only sound like a crisis."""

    examples: dict[Literal["fire_medical", "danger", "suicide", "none"], list[NonEmpty]]


class CrisisFile(Strict):
    # Kinds in order of precedence: when several are found, the first one answers.
    kinds: dict[CrisisKindId, CrisisKind]
    # Where one clause ends and the next begins, on the text as typed: sentence ends and
    # discourse markers (「あと」「ところで」「ていうか」) that often introduce a second matter.
    clause_breaks: list[Annotated[str, AfterValidator(_raw_pattern)]] = Field(min_length=1)
    cues: list[CrisisCue] = Field(min_length=1)
    # The crisis model's margin (0-100, like intent scores) at or above which a clause is a
    # crisis without any cue; chosen on cross-validation for recall (python -m bot evaluate).
    model_threshold: float = Field(ge=0, le=100)
    # The same right after a crisis answer: a resident who just said 「死にたい」 and then
    # 「もうどうでもいい」 is still in that crisis, so the model listens more closely.
    model_threshold_after_crisis: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _complete(self) -> "CrisisFile":
        missing = {"fire_medical", "danger", "suicide"} - set(self.kinds)
        if missing:
            raise ValueError(f"kinds lack {sorted(missing)}")
        return self


# ---------------------------------------------------------------- desks

_PHONE_CHARS = re.compile(r"^[0-9０-９#＃\-－‐ー()（）\s]+$")


def _phone_syntax(number: str) -> str:
    if not _PHONE_CHARS.match(number):
        raise ValueError(f"phone {number!r} has characters other than digits, #, hyphens, brackets")
    if len(tel_digits(number)) < 3:
        raise ValueError(f"phone {number!r} has fewer than 3 digits")
    return number


def tel_digits(number: str) -> str:
    """The dialable form of a printed number: '096-328- 2716' -> '0963282716'."""
    import unicodedata

    folded = unicodedata.normalize("NFKC", number)
    return "".join(ch for ch in folded if ch.isdigit() or ch == "#")


def dialable(digits: str) -> bool:
    """Whether a phone can dial these digits as they are: a short service number
    (110, 119, 189 ...), a # number (#9110), or a full number with its area or
    service code (0963282716, 0120..., 0570..., 090...)."""
    if digits.startswith("#"):
        return len(digits) == 5 and digits[1:].isdigit()
    if len(digits) == 3:
        return digits.startswith("1")
    return digits.startswith("0") and len(digits) in (10, 11)


class Phone(Strict):
    number: Annotated[str, AfterValidator(_phone_syntax)]  # printed exactly as the source prints it
    label: Text | None = None
    # What the tel: button dials when the source prints the number without its area
    # code (Minato's plan prints 「3578-2378」): the full number, area code included.
    dial: Annotated[str, AfterValidator(_phone_syntax)] | None = None

    @model_validator(mode="after")
    def _dialable(self) -> "Phone":
        digits = tel_digits(self.dial or self.number)
        if not dialable(digits):
            what = f"dial {self.dial!r}" if self.dial else f"{self.number!r}"
            raise ValueError(f"{what} cannot be dialled from a phone as it is: add `dial:` with the full "
                             "number (area code included), as the operator publishes it")
        if self.dial and tel_digits(self.dial)[-len(tel_digits(self.number)):] != tel_digits(self.number):
            raise ValueError(f"dial {self.dial!r} does not end with the printed number {self.number!r}")
        return self

    @property
    def shown(self) -> str:
        """What a card prints: the full number where the source left out the area code,
        so that a resident copying it by hand dials the same as the button."""
        return self.dial or self.number

    @property
    def tel_uri(self) -> str:
        # '#' must be percent-encoded in a tel: URI.
        return "tel:" + tel_digits(self.dial or self.number).replace("#", "%23")


class Desk(Strict):
    id: Id
    name: Text
    about: Text | None = None
    phones: list[Phone] = []
    hours: Text | None = None
    # The page the card's 公式ページ button opens: the operator's own page about this desk,
    # never the page a fact was found on (that one belongs in `sources`, for staff).
    # Left out where no such page is verified: then the card has no web button.
    official_url: Url | None = None
    chat_url: Url | None = None
    sources: list[NonEmpty] = Field(min_length=1)
    last_checked: dt.date
    status: Literal["verified", "unverified"]
    note: str | None = None

    @property
    def reachable(self) -> bool:
        """Whether a resident could contact it from a card (kept in data either way)."""
        return bool(self.phones or self.official_url or self.chat_url)

    @property
    def emergency(self) -> bool:
        return any(tel_digits(p.number) in ("110", "119") for p in self.phones)


class DeskFile(Strict):
    desks: list[Desk] = Field(min_length=1)


# ---------------------------------------------------------------- answers and cities


class Answer(Strict):
    text: Text
    desks: list[Id] = []
    more_desks: list[Id] = []
    show_menu: bool = False  # offer the city menu as quick replies (greeting, help_menu ...)
    # the next step this answer opens: language choice, alert settings, or stopping alerts
    opens: Literal["language", "alert_settings", "alert_stop"] | None = None
    triage: bool = False  # also show the city's triage card (needs -> intents)


class AnswerFile(Strict):
    answers: dict[Id, Answer]


class MenuItem(Strict):
    intent: Id
    label: Label


class Fallback(Strict):
    text: Text
    desks: list[Id] = Field(min_length=1)


class Card(Strict):
    title: Text
    body: Text


class Area(Strict):
    id: Id
    label: Label


class Topic(Strict):
    # A closed list: DV, sexual-violence and victim help can never be a topic (S1).
    id: Literal["fraud", "suspicious", "missing", "emergency", "safety"]
    label: Label
    alert_label: Text | None = None  # the alert card's heading, in the city's police wording (default: label)


class Need(Strict):
    text: Text  # shown in full on the card (no 20-character label limit there)
    intent: Id


class Triage(Strict):
    """A card of needs, each opening its intent: Minato's plan lists nine such headings."""

    title: Text
    source: NonEmpty
    needs: list[Need] = Field(min_length=1, max_length=12)


ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class QuietHours(Strict):
    """Non-urgent alert topics wait for the morning (docs/alerts.md §3.4:
    municipal LINE posts go out in office hours, except in emergencies). Times are JST;
    a window that passes midnight (21:00-08:00) is the usual case."""

    start: ClockTime
    end: ClockTime
    # `emergency` can never wait; `missing` should not (a search needs eyes tonight).
    topics: list[Literal["fraud", "suspicious", "missing", "safety"]] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("start and end are the same time: the window would be empty")
        return self


class Digest(Strict):
    """Residents may choose to get non-urgent alerts once a day, as one message
    (docs/alerts.md §3.4: too many alerts made people cancel altogether)."""

    time: ClockTime  # JST, outside quiet hours (an office-hours post)
    # `emergency` and `missing` are never held back for a digest.
    topics: list[Literal["fraud", "suspicious", "safety"]] = Field(min_length=1)


AlertTopic = Literal["fraud", "suspicious", "missing", "emergency", "safety"]


class CityFile(Strict):
    id: Id
    name: Text
    menu: list[MenuItem] = Field(min_length=1, max_length=12)
    fallback: Fallback
    harmless_card: Card
    welcome: Text
    areas: list[Area] = Field(min_length=1, max_length=11)
    topics: list[Topic] = Field(min_length=1, max_length=11)
    triage: Triage | None = None
    # the desk each alert topic points to (its tel: button), unless staff name another
    alert_desks: dict[AlertTopic, Id]
    quiet_hours: QuietHours | None = None
    digest: Digest | None = None

    @model_validator(mode="after")
    def _digest_outside_quiet_hours(self) -> "CityFile":
        if self.digest and self.quiet_hours:
            start, end, at = self.quiet_hours.start, self.quiet_hours.end, self.digest.time
            if within(start, end, at):
                raise ValueError(f"digest.time {at} falls in quiet_hours ({start}-{end}): it would wait a night")
        return self


class UiFile(Strict):
    ui: dict[Id, Text]


# ---------------------------------------------------------------- rich menu


class RichMenuButton(Strict):
    label: Label  # drawn on the image and used as the area's action label
    # exactly one of: our postback data, or a tel:/https: link
    postback: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    uri: Annotated[str, Field(pattern=r"^(tel:[0-9#%]+|https://\S+)$")] | None = None

    @model_validator(mode="after")
    def _one_action(self) -> RichMenuButton:
        if (self.postback is None) == (self.uri is None):
            raise ValueError("a rich-menu button needs exactly one of postback or uri")
        return self


class RichMenu(Strict):
    name: Annotated[str, Field(min_length=1, max_length=300)]
    chat_bar_text: Label
    columns: int = Field(ge=1, le=4)
    rows: int = Field(ge=1, le=2)
    image: Annotated[str, Field(pattern=r"^[a-z0-9_\-]+\.png$")]
    buttons: list[RichMenuButton] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _grid(self) -> RichMenu:
        if len(self.buttons) != self.columns * self.rows:
            raise ValueError(f"{len(self.buttons)} buttons do not fill a {self.columns}x{self.rows} grid")
        if len(self.chat_bar_text.ja) > 14:
            raise ValueError("chat_bar_text is over LINE's 14 characters")
        return self


class RichMenuFile(Strict):
    richmenu: RichMenu
