"""Awareness campaigns with surveys, and their measured reach.

A campaign targets subscribers (topics x areas), splits them between variants
(A/B, evenly or by weights, by a stable hash), and carries a survey: an external
URL behind a per-recipient tracked link (/r/<token>) and/or questions answered in
the chat with quick replies. Results are counted without the resident's id:
clicks by token, answers by a salted hash (only so that the latest answer wins).

Campaigns are general awareness (docs/safety.md S1, docs/alerts.md §6.3):
neutral titles, never a segment defined by a sensitive topic (topics are the
closed subscription list).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import math
import time
import uuid
from typing import Annotated, Any, cast

import redis
from linebot.v3.messaging import FlexContainer, FlexMessage, Message
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from bot.broadcast import stats
from bot.broadcast.subscriptions import TOPICS
from bot.core.clock import JST
from bot.core.keys import campaign_key, link_key
from bot.core.postback import postback_data
from bot.core.validation import clean, every_error, neutral
from bot.line.messages import QuickAction, quick_reply

TOKEN_BYTES = 16


class CampaignError(ValueError):
    """A request staff must correct."""


Clean = BeforeValidator(clean)
Neutral = Annotated[str, Clean, AfterValidator(neutral)]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[A-Z]$")]
    weight: float = Field(default=1.0, gt=0)
    title: Annotated[Neutral, Field(min_length=1, max_length=60)]  # also the altText
    text: Annotated[str, Clean, Field(min_length=1, max_length=600)]
    button: Annotated[Neutral, Field(min_length=1, max_length=20)] = "アンケートに答える"


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Clean, Field(min_length=1, max_length=200)]
    options: list[Annotated[Neutral, Field(min_length=1, max_length=20)]] = Field(min_length=2, max_length=4)


class Survey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(pattern=r"^https://\S+$")] | None = None
    questions: list[Question] = Field(default_factory=list, max_length=5)
    # An optional last free-text question; off by default. The text is never kept:
    # only the count of residents who answered it.
    free_text: StrictBool = False
    free_text_prompt: Annotated[str, Clean, Field(min_length=1, max_length=200)] = (
        "ほかにご意見があれば、自由にお書きください（送らなくても大丈夫です）。")

    @model_validator(mode="after")
    def _something(self) -> Survey:
        if not self.url and not self.questions:
            raise ValueError("アンケートには、回答ページのURLか質問の少なくともどちらかが必要です")
        return self


class CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Clean, Field(min_length=1, max_length=80)]
    topics: list[str] = Field(min_length=1)
    areas: list[str] = Field(default_factory=lambda: ["all"], min_length=1)
    variants: list[Variant] = Field(min_length=1, max_length=4)
    survey: Survey
    track_clicks: StrictBool = True  # per-recipient links: one push per recipient, not multicast

    @model_validator(mode="after")
    def _valid(self) -> CampaignRequest:
        if self.topics == ["all"]:  # every subscriber, whatever they chose
            self.topics = list(TOPICS)
        unknown = [t for t in self.topics if t not in TOPICS]
        if unknown:
            raise ValueError(f"topics: {unknown} は登録の種類にありません（{', '.join(TOPICS)}）。キャンペーンは"
                             "相談の話題で相手を選びません")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("パターン名（A、B…）が重なっています")
        return self


def validate(data: Any, city_areas: list[str]) -> CampaignRequest:
    try:
        request = CampaignRequest.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(every_error(exc)) from None
    unknown = [a for a in request.areas if a not in city_areas and a != "all"]
    if unknown:
        raise CampaignError(f"areas: この市にない地域です {unknown}")
    return request


def new_id() -> str:
    return "c" + uuid.uuid4().hex[:8]  # short: it is part of LINE's aggregation unit names


def create_campaign(client: redis.Redis, city_id: str, city_areas: list[str], data: Any,
                    campaign_id: str | None = None) -> str:
    """Validate and store a campaign (a draft until sent). With `campaign_id` (the staff
    record's id) a second call finds it stored and stores nothing."""
    request = validate(data, city_areas)
    if campaign_id is not None and client.exists(campaign_key(campaign_id)):
        return campaign_id
    campaign_id = campaign_id or new_id()
    client.hset(campaign_key(campaign_id), mapping={
        "city": city_id, "city_areas": ",".join(city_areas), "spec": request.model_dump_json(),
        "created_at": f"{time.time():.3f}", "state": "draft"})
    return campaign_id


def load(client: redis.Redis, campaign_id: str) -> CampaignRequest | None:
    spec = client.hget(campaign_key(campaign_id), "spec")
    return CampaignRequest.model_validate_json(spec) if spec else None


def unit_name(campaign_id: str, variant: str) -> str:
    """LINE customAggregationUnits name: ^[a-zA-Z0-9_]{1,30}$, one per campaign variant."""
    return f"{campaign_id}_{variant}"


def assign_variant(campaign_id: str, user_id: str, variants: list[Variant]) -> Variant:
    """A stable, uniform draw per (campaign, resident), cut by the weights."""
    digest = hashlib.sha256(f"{campaign_id}:{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v.weight for v in variants)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


# ---------------------------------------------------------------- messages, links, answers


def link_token(salt: str, campaign_id: str, user_id: str) -> str:
    """A resident's tracked-link token for one campaign: the same on every resend, so no
    record of who got which link is needed; without the salt it says nothing of the resident."""
    digest = hmac.new(salt.encode(), f"link:{campaign_id}:{user_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode()


def store_links(client: redis.Redis, campaign_id: str, variants: dict[str, str], url: str) -> None:
    """Make tokens (token -> variant) answer /r/<token> with the survey URL (a click counts
    for the campaign and variant only)."""
    pipe = client.pipeline(transaction=False)
    for token, variant in variants.items():
        pipe.hset(link_key(token), mapping={"c": campaign_id, "v": variant, "url": url})
        pipe.expire(link_key(token), 180 * 24 * 3600)
    pipe.execute()


def message_for(campaign_id: str, spec: CampaignRequest, variant: Variant, link: str | None) -> Message:
    """The campaign card: title (also the neutral altText), text, the survey button and,
    when the survey has in-chat questions, the first question with its answers as quick replies."""
    body: list[dict[str, Any]] = [{"type": "text", "text": variant.title, "weight": "bold", "wrap": True},
                                  {"type": "text", "text": variant.text, "wrap": True, "size": "sm"}]
    if spec.survey.questions:
        body.append({"type": "text", "text": spec.survey.questions[0].text, "wrap": True, "size": "sm",
                     "weight": "bold"})
    bubble: dict[str, Any] = {"type": "bubble", "body": {"type": "box", "layout": "vertical", "spacing": "sm",
                                                          "contents": body}}
    if link:
        bubble["footer"] = {"type": "box", "layout": "vertical", "contents": [{
            "type": "button", "style": "primary", "height": "sm",
            "action": {"type": "uri", "label": variant.button, "uri": link}}]}
    reply = question_reply(campaign_id, 0, spec.survey.questions[0]) if spec.survey.questions else None
    return FlexMessage(alt_text=variant.title, contents=FlexContainer.from_dict(bubble), quick_reply=reply)


def question_reply(campaign_id: str, index: int, question: Question):  # noqa: ANN201
    return quick_reply([QuickAction(o, postback_data("answer", c=campaign_id, q=str(index), o=str(k)), display=o)
                        for k, o in enumerate(question.options)])


def record_click(client: redis.Redis, token: str) -> str | None:
    """The survey URL for a known token (counting the click), or None."""
    if not token or len(token) > 64:
        return None
    link = cast("dict[str, str]", client.hgetall(link_key(token)))  # the client decodes responses: str, not bytes
    if not link:
        return None
    pipe = client.pipeline()
    pipe.incr(f"{campaign_key(link['c'])}:clicks:{link['v']}")
    pipe.sadd(f"{campaign_key(link['c'])}:clickers:{link['v']}", token)  # unique per recipient, no user id
    pipe.execute()
    return link["url"]


def record_answer(client: redis.Redis, salt: str, user_id: str, campaign_id: str, question: int,
                  option: int) -> tuple[Question | None, CampaignRequest]:
    """Store the answer (the latest wins); return the next question, if any, and the campaign."""
    spec = load(client, campaign_id)
    if spec is None or not 0 <= question < len(spec.survey.questions):
        raise CampaignError("unknown campaign or question")
    if not 0 <= option < len(spec.survey.questions[question].options):
        raise CampaignError("unknown option")
    who = hmac.new(salt.encode(), f"{campaign_id}:{user_id}".encode(), hashlib.sha256).hexdigest()[:24]
    variant = assign_variant(campaign_id, user_id, spec.variants).name
    client.hset(f"{campaign_key(campaign_id)}:answers:{question}", who, f"{variant}:{option}")
    following = question + 1
    return (spec.survey.questions[following] if following < len(spec.survey.questions) else None), spec


# ---------------------------------------------------------------- LINE's statistics


def fetch_insights(client: redis.Redis, insight_api: Any, campaign_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Fetch LINE's per-unit statistics for each variant and keep a snapshot.

    LINE withholds values under 20 (null): they are stored as "null" and shown as
    "not yet known", never as 0. `insight_api` is line-bot-sdk's linebot.v3.insight.Insight.
    """
    spec = load(client, campaign_id)
    if spec is None:
        raise CampaignError("unknown campaign")
    # decoded (str, not bytes); create_campaign stores created_at with the spec, which load found
    created_at = cast(str, client.hget(campaign_key(campaign_id), "created_at"))
    created = dt.datetime.fromtimestamp(float(created_at), JST).date()
    today = dt.datetime.now(JST).date()
    end = min(today, created + dt.timedelta(days=30))  # LINE allows at most 30 days per request
    snapshot: dict[str, str] = {"fetched_at": f"{time.time():.3f}"}
    for variant in spec.variants:
        response = insight_api.get_statistics_per_unit(unit_name(campaign_id, variant.name),
                                                       created.strftime("%Y%m%d"), end.strftime("%Y%m%d"),
                                                       _request_timeout=timeout)
        overview = response.overview
        for field, value in (("uniqueImpression", overview.unique_impression),
                             ("uniqueClick", overview.unique_click)):
            snapshot[f"{variant.name}:{field}"] = "null" if value is None else str(int(value))
    # redis annotates `mapping` as Mapping[FieldT, EncodableT], invariant in its key: it rejects any dict[str, str]
    client.hset(f"{campaign_key(campaign_id)}:insight", mapping=snapshot)  # type: ignore[arg-type]
    return snapshot


# ---------------------------------------------------------------- results


def count_free_text(client: redis.Redis, campaign_id: str) -> None:
    """A free-text answer arrived: count it; its words are not kept anywhere."""
    client.incr(f"{campaign_key(campaign_id)}:free_text_answered")


def campaign_stats(client: redis.Redis, campaign_id: str) -> dict[str, Any] | None:
    spec = load(client, campaign_id)
    if spec is None:
        return None
    variants = [v.name for v in spec.variants]
    # the client decodes responses: str, not bytes
    answers = [cast("list[str]", client.hvals(f"{campaign_key(campaign_id)}:answers:{q}"))
               for q in range(len(spec.survey.questions))]
    meta = client.hmget(campaign_key(campaign_id), "state", "mode", "recipients", "not_before")
    # when quiet hours hold it back: the time it goes out (JST), as an alert's status says
    held = (dt.datetime.fromtimestamp(int(meta[3]), JST).isoformat()
            if meta[3] and meta[0] == "queued" else None)
    out: dict[str, Any] = {"id": campaign_id, "name": spec.name, "state": meta[0], "scheduled_for": held,
                           "mode": meta[1], "recipients": int(meta[2]) if meta[2] else None, "variants": {},
                           "baseline": {"open_rate": round(stats.BASELINE_OPEN, 4),
                                        "click_rate": round(stats.BASELINE_CLICK, 4)}}
    rates: dict[str, dict[str, stats.Rate]] = {}
    measured = spec.track_clicks and spec.survey.url is not None
    for name in variants:
        delivered = int(client.get(f"{campaign_key(campaign_id)}:delivered:{name}") or 0)
        unique_clicks = client.scard(f"{campaign_key(campaign_id)}:clickers:{name}")
        clicks = int(client.get(f"{campaign_key(campaign_id)}:clicks:{name}") or 0)
        insight = client.hmget(f"{campaign_key(campaign_id)}:insight", f"{name}:uniqueImpression", f"{name}:uniqueClick")
        # LINE withholds values under 20 (null): "not yet known", never 0
        opens, line_clicks = (None if raw in (None, "", "null") else int(raw) for raw in insight)
        responders = {q: sum(1 for a in qa if a.startswith(f"{name}:")) for q, qa in enumerate(answers)}
        responses = responders.get(0, 0)
        click_rate, response_rate = stats.wilson(unique_clicks, delivered), stats.wilson(responses, delivered)
        # LINE's figures "may contain some errors": never let them exceed what we delivered
        open_rate = stats.wilson(min(opens, delivered), delivered) if opens is not None and delivered else None
        rates[name] = {"click": click_rate, "response": response_rate}
        out["variants"][name] = {
            "delivered": delivered,
            "opens": opens if opens is not None else "not yet known",
            "open_rate": open_rate.as_dict() if open_rate else "not yet known",
            # without tracked links nobody's click is counted: "not measured", never 0
            "unique_clicks": unique_clicks if measured else "not measured",
            "clicks": clicks if measured else "not measured",
            "click_rate": click_rate.as_dict() if measured else "not measured",
            "line_unique_clicks": line_clicks if line_clicks is not None else "not yet known",
            "responses": responses, "response_rate": response_rate.as_dict(),
            "answers": [{o: sum(1 for a in qa if a == f"{name}:{k}") for k, o in enumerate(q.options)}
                        for q, qa in zip(spec.survey.questions, answers)],
        }
    if spec.survey.free_text:
        out["free_text_answered"] = int(client.get(f"{campaign_key(campaign_id)}:free_text_answered") or 0)
    if len(variants) >= 2:
        a, b = variants[0], variants[1]
        out["comparison"] = {
            "click": stats.compare(rates[a]["click"], rates[b]["click"], (a, b)).verdict if measured
            else "not measured",
            "response": stats.compare(rates[a]["response"], rates[b]["response"], (a, b)).verdict,
        }
    return out


def chart_svg(report: dict[str, Any]) -> str:
    """The funnel per variant (open, click, answer rates with 95% intervals) against
    Kumamoto's baseline (34.4% open, 3.1% click), as a standalone SVG."""
    from xml.sax.saxutils import escape

    bars = [("open_rate", "開封", "#4f7cac"), ("click_rate", "クリック", "#e07a1f"), ("response_rate", "回答", "#3a9d5d")]
    variants = list(report["variants"].items())
    # the right margin holds the baseline labels, clear of the bars
    width, height, left, top, plot_h = 230 + 190 * len(variants), 360, 60, 40, 240
    right = width - 120
    values = [v[key]["high"] for _, v in variants for key, _, _ in bars if isinstance(v[key], dict) and v[key]["high"]]
    # the axis reaches past the tallest interval, in steps of 10% (a bar never rises above it)
    top_value = math.ceil(max([0.4, *values]) * 10 - 1e-9) / 10
    y = lambda r: top + plot_h * (1 - r / top_value)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{escape(report["name"])}</text>']
    for frac in (step / 10 for step in range(int(round(top_value * 10)) + 1)):
        if frac <= top_value:
            out.append(f'<line x1="{left}" x2="{right}" y1="{y(frac):.1f}" y2="{y(frac):.1f}" stroke="#eee"/>'
                       f'<text x="{left - 8}" y="{y(frac) + 4:.1f}" text-anchor="end">{frac:.0%}</text>')
    for rate, label in ((report["baseline"]["open_rate"], "熊本 開封 34.4%"),
                        (report["baseline"]["click_rate"], "熊本 クリック 3.1%")):
        out.append(f'<line x1="{left}" x2="{right}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" stroke="#c00" '
                   f'stroke-dasharray="6 4"/><text x="{right + 6}" y="{y(rate) + 4:.1f}" fill="#c00">{label}</text>')
    for n, (name, v) in enumerate(variants):
        x0 = left + 30 + 190 * n
        out.append(f'<text x="{x0 + 75}" y="{top + plot_h + 38}" text-anchor="middle" font-size="13">'
                   f'{escape(name)} (配信 {v["delivered"]:,})</text>')
        for k, (key, label, colour) in enumerate(bars):
            x = x0 + 50 * k
            rate = v[key]
            out.append(f'<text x="{x + 20}" y="{top + plot_h + 18}" text-anchor="middle">{label}</text>')
            if not isinstance(rate, dict) or rate["rate"] is None:
                out.append(f'<text x="{x + 20}" y="{top + plot_h - 6}" text-anchor="middle" fill="#888">未確定</text>')
                continue
            out.append(f'<rect x="{x}" y="{y(rate["rate"]):.1f}" width="40" height="{y(0) - y(rate["rate"]):.1f}" '
                       f'fill="{colour}"/><line x1="{x + 20}" x2="{x + 20}" y1="{y(rate["low"]):.1f}" '
                       f'y2="{y(rate["high"]):.1f}" stroke="#222"/><text x="{x + 20}" y="{y(rate["high"]) - 4:.1f}" '
                       f'text-anchor="middle">{rate["rate"]:.1%}</text>'
                       f'<text x="{x + 20}" y="{y(0) - 4:.1f}" text-anchor="middle" fill="white" font-size="10">'
                       f'{rate["hits"]:,}</text>')
    out.append("</svg>")
    return "".join(out)


def stats_csv(report: dict[str, Any], questions: list[Question] | None = None) -> str:
    """Everything on the results page: the funnel per variant, the baseline, the comparison,
    and (given the questions) the answer counts per option."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["variant", "delivered", "opens", "open_rate", "unique_clicks", "clicks", "click_rate",
                     "click_low", "click_high", "responses", "response_rate", "response_low", "response_high"])
    for name, v in report["variants"].items():
        writer.writerow([name, v["delivered"], v["opens"], _rate(v["open_rate"], "rate"), v["unique_clicks"],
                         v["clicks"], _rate(v["click_rate"], "rate"), _rate(v["click_rate"], "low"),
                         _rate(v["click_rate"], "high"), v["responses"], _rate(v["response_rate"], "rate"),
                         _rate(v["response_rate"], "low"), _rate(v["response_rate"], "high")])
    writer.writerow([])
    writer.writerow(["baseline_open_rate", report["baseline"]["open_rate"], "baseline_click_rate",
                     report["baseline"]["click_rate"]])
    for key, verdict in (report.get("comparison") or {}).items():
        writer.writerow([f"comparison_{key}", verdict])
    for index, question in enumerate(questions or []):
        writer.writerow([])
        writer.writerow([f"question_{index + 1}", question.text, *report["variants"]])
        for option in question.options:
            writer.writerow(["", option, *(v["answers"][index].get(option, 0) for v in report["variants"].values())])
    return buf.getvalue()


def _rate(value: Any, key: str) -> str:
    if not isinstance(value, dict):
        return str(value)  # "not measured", "not yet known"
    return "" if value.get(key) is None else f"{value[key]:.4f}"


