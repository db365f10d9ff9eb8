"""Scam and safety alerts: what staff write, how it looks, where it is kept, how it is doing.

The staff API, the CLI and (later) the console all call `create_alert` (through
bot.broadcast.actions); delivery itself is bot.broadcast.alert_delivery's job on RQ workers.

An alert follows the police pattern (docs/alerts.md §1): 手口 ->
where/when -> up to 3 countermeasures -> where to call (a desk's tel: button) ->
「身近な方にも伝えて」. Topics are a closed list: DV, sexual-violence and victim
help are never pushed (docs/safety.md S1), so they cannot be alert topics.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, cast

import redis
from linebot.v3.messaging import FlexContainer, FlexMessage
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)

from bot.broadcast import digest
from bot.broadcast.subscriptions import ALL_AREAS, TOPICS
from bot.content.loader import City
from bot.content.schema import AlertTopic, QuietHours
from bot.core.clock import JST, next_at, within
from bot.core.keys import ALERTS_ACTIVE, alert_key
from bot.core.validation import clean, every_error, neutral

SENSITIVE_TOPICS = ("dv", "sexual_violence", "stalking", "victim", "victim_support", "child_abuse", "suicide")
LANGUAGES = ("ja", "en")  # an alert's versions; residents who chat in English get the English one if written


class AlertError(ValueError):
    """A request staff must correct; the message says what and why."""


Clean = BeforeValidator(clean)
Title = Annotated[str, Clean, Field(min_length=1, max_length=60), AfterValidator(neutral)]
Body = Annotated[str, Clean, Field(min_length=1, max_length=600)]  # 手口: who they pretend to be, what they say
WhereWhen = Annotated[str, Clean, Field(max_length=200)]
Countermeasures = list[Annotated[str, Clean, Field(min_length=1, max_length=80)]]


class AlertText(BaseModel):
    """The English version of an alert, written by staff (never machine-translated)."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Body
    where_when: WhereWhen | None = None
    countermeasures: Countermeasures = Field(default_factory=list, max_length=3)


class AlertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str
    areas: list[str] = Field(min_length=1)
    title: Title
    body: Body
    where_when: WhereWhen | None = None
    countermeasures: Countermeasures = Field(default_factory=list, max_length=3)
    en: AlertText | None = None
    desk: str | None = None  # default: the city's desk for the topic
    send_now: StrictBool = False  # staff override of the city's quiet hours ("yes" is refused, not true)

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        if topic in SENSITIVE_TOPICS or topic not in TOPICS:
            raise ValueError(f"「{topic}」はお知らせの種類にありません（{', '.join(TOPICS)} のどれか）。DV・性暴力・"
                             "犯罪被害の相談は、相談する人を守るためお知らせでは送りません")
        return topic


def validate_request(data: Any, city: City) -> AlertRequest:
    """Schema first, then what depends on the city (areas, desk)."""
    try:
        request = AlertRequest.model_validate(data)
    except ValidationError as exc:
        raise AlertError(every_error(exc)) from None
    areas = {a.id for a in city.config.areas}
    unknown = [a for a in request.areas if a not in areas]
    if unknown:
        raise AlertError(f"areas: この市にない地域です {unknown}（{', '.join(sorted(areas))} から選んでください）")
    desk_id = request.desk or city.config.alert_desks[cast(AlertTopic, request.topic)]  # _topic: one of TOPICS
    desk = city.desks.get(desk_id)
    if desk is None or not desk.phones:
        raise AlertError(f"desk: 「{desk_id}」は電話番号のある窓口として登録されていません")
    return request.model_copy(update={"desk": desk_id})


def render(request: AlertRequest, city: City, lang: str = "ja") -> FlexMessage:
    """The alert card in `lang` ("ja", or "en" when staff wrote an English version); altText
    (the lock-screen preview) is the title alone. Its wording is content (ui.yaml, city.yaml)."""
    text: AlertRequest | AlertText = request.en if lang == "en" and request.en else request
    lang = "en" if text is request.en else "ja"
    ui = city.ui
    topic = next(t for t in city.config.topics if t.id == request.topic)
    desk = city.desks[request.desk or city.config.alert_desks[cast(AlertTopic, request.topic)]]  # _topic: one of TOPICS
    colon = ": " if lang == "en" else "："
    t = lambda value, **kw: {"type": "text", "text": value, "wrap": True, **kw}  # noqa: E731
    body: list[dict[str, Any]] = [t((topic.alert_label or topic.label).get(lang), size="xs", color="#c8102e",
                                    weight="bold"),
                                  t(text.title, weight="bold", size="md"),
                                  t(ui["alert_method"].get(lang) + colon + text.body, size="sm")]
    if text.where_when:
        body.append(t(ui["alert_where_when"].get(lang) + colon + text.where_when, size="sm"))
    if text.countermeasures:
        marks = "①②③"
        body.append(t(ui["alert_countermeasures"].get(lang) + colon
                      + " ".join(f"{marks[n]} {c}" for n, c in enumerate(text.countermeasures)), size="sm"))
    body.append(t(ui["alert_desk"].get(lang) + colon + desk.name.get(lang), size="sm"))
    body.append(t(ui["alert_share"].get(lang), size="xs", color="#555555"))
    phone = desk.phones[0]
    bubble = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
        "footer": {"type": "box", "layout": "vertical", "contents": [{
            "type": "button", "style": "primary", "height": "sm",
            "action": {"type": "uri", "label": f"{ui['call_button'].get(lang)} {phone.shown}"[:20],
                       "uri": phone.tel_uri}}]},
    }
    return FlexMessage(alt_text=text.title, contents=FlexContainer.from_dict(bubble))


# ---------------------------------------------------------------- storage and status


def quiet_until(quiet: QuietHours | None, topic: str | None, now: dt.datetime) -> dt.datetime | None:
    """When an alert on `topic` created at `now` may go out, if the city's quiet hours hold it
    back; `topic` None (a campaign: never urgent) is held back whatever the topics."""
    if quiet is None or (topic is not None and topic not in quiet.topics):
        return None
    if not within(quiet.start, quiet.end, now.astimezone(JST).strftime("%H:%M:%S")):
        return None
    return next_at(quiet.end, now)


def release_time(request: AlertRequest, city: City, now: dt.datetime,
                 at: dt.datetime | None = None) -> dt.datetime | None:
    """When the alert goes out: None for at once; `at` when staff chose a later time; the end
    of quiet hours when the time falls in them (unless staff chose to send now)."""
    start = at if at is not None and at > now else now
    held = None if request.send_now else quiet_until(city.config.quiet_hours, request.topic, start)
    return held or (start if start > now else None)


def new_id(now: dt.datetime | None = None) -> str:
    """Sortable by creation time: 20261207093000-1a2b3c4d."""
    return (now or dt.datetime.now(JST)).astimezone(JST).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]


def create_alert(client: redis.Redis, city: City, data: Any, now: dt.datetime | None = None,
                 at: dt.datetime | None = None, alert_id: str | None = None) -> str:
    """Validate, store and return the new alert's id (queued; bot.broadcast.alert_delivery sends it, at
    once, at `at` if staff chose a time, or, for a topic the city's quiet hours hold back, when they end).
    With `alert_id` (the staff record's id) a second call finds the alert stored and stores nothing."""
    request = validate_request(data, city)
    now = now or dt.datetime.now(JST)
    if alert_id is not None and client.exists(alert_key(alert_id)):
        return alert_id
    alert_id = alert_id or new_id(now)
    messages = {lang: json.dumps(render(request, city, lang).to_dict(), ensure_ascii=False)
                for lang in LANGUAGES if lang == "ja" or request.en}
    release = release_time(request, city, now, at)
    pipe = client.pipeline()
    if release is not None:
        pipe.hset(alert_key(alert_id), "not_before", f"{release.timestamp():.0f}")
    pipe.hset(alert_key(alert_id), mapping={
        "city": city.id, "topic": request.topic, "areas": ",".join(request.areas), "title": request.title,
        "city_areas": ",".join(a.id for a in city.config.areas),
        "request": request.model_dump_json(), "message": messages["ja"],
        **({"message_en": messages["en"]} if "en" in messages else {}),
        "state": "queued", "created_at": f"{now.timestamp():.3f}", "sent": 0, "failed": 0, "capped": 0,
        "chunks_done": 0,
    })
    pipe.sadd(ALERTS_ACTIVE, alert_id)
    pipe.execute()
    digest_config = city.config.digest
    if digest_config is not None and request.topic in digest_config.topics:
        # Residents who chose the daily digest get it in the first digest after it goes out.
        slot = digest.register(client, city.id, alert_id, digest_config, release or now, city.ui["digest_title"])
        client.hset(alert_key(alert_id), "digest_at", f"{slot.timestamp():.0f}")
    return alert_id


__all__ = ["ALL_AREAS", "AlertError", "AlertRequest", "create_alert", "quiet_until",
           "render"]
