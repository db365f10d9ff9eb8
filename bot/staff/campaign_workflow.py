"""Campaigns in the records: draft, edit, submit, approve (and send), reject, cancel, and their
reach and preview. The console, the staff API and the CLI call these."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.broadcast import actions, campaigns, reach
from bot.broadcast.campaigns import CampaignError, CampaignRequest
from bot.core.keys import campaign_key
from bot.staff import audit, records
from bot.staff.errors import Conflict, StaffError
from bot.staff.models import Broadcast, utcnow
from bot.staff.records import Context, get, locked, move, parse_send_at
from bot.staff.roles import Actor


def parse(ctx: Context, data: Any) -> tuple[CampaignRequest, dt.datetime | None]:
    if not isinstance(data, dict):
        raise StaffError("JSONのオブジェクトで送ってください。")
    data = dict(data)
    at = parse_send_at(data)
    try:
        return campaigns.validate(data, [a.id for a in ctx.city.config.areas]), at
    except CampaignError as exc:
        raise StaffError(str(exc)) from None


def _fill(record: Broadcast, request: CampaignRequest, at: dt.datetime | None) -> None:
    record.topic, record.areas, record.title = ",".join(request.topics), ",".join(request.areas), request.name
    record.request = json.loads(request.model_dump_json())
    record.send_mode, record.send_at = ("at" if at else "asap"), at


def draft(ctx: Context, actor: Actor, data: Any, *, submit: bool = True) -> Broadcast:
    request, at = parse(ctx, data)
    record = Broadcast(id=campaigns.new_id(), kind="campaign", city=ctx.city.id, state="draft", author_id=actor.id)
    _fill(record, request, at)
    with ctx.db.session() as session:
        session.add(record)
        audit.record(session, actor.name, "draft", "campaign", record.id, title=record.title)
        if submit:
            move(session, record, "submit", actor)
    return get(ctx, record.id)


def edit(ctx: Context, actor: Actor, record_id: str, data: Any) -> Broadcast:
    request, at = parse(ctx, data)
    with locked(ctx, record_id, "campaign") as (session, record):
        move(session, record, "edit", actor)
        if record.state == "rejected":
            record.state = "draft"
        _fill(record, request, at)
    return get(ctx, record_id)


def submit(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    return records.submit(ctx, actor, record_id, "campaign")


def reject(ctx: Context, actor: Actor, record_id: str, reason: str) -> Broadcast:
    return records.reject(ctx, actor, record_id, reason, "campaign")


def approve(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    with locked(ctx, record_id, "campaign") as (session, record):
        move(session, record, "approve", actor)
        record.approver_id, record.approved_at = actor.id, utcnow()
    return dispatch(ctx, actor, record_id)


def dispatch(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    """Store the campaign for delivery under the record's id and queue it; a retry finds it
    stored and queued and never queues it twice."""
    with locked(ctx, record_id, "campaign") as (session, record):
        if record.state != "approved":
            move(session, record, "queue", actor)  # refused by the table, with the reason
        city_areas = [a.id for a in ctx.city.config.areas]
        try:
            campaigns.create_campaign(ctx.redis, ctx.city.id, city_areas, record.request, campaign_id=record.id)
            held = actions.send_campaign(ctx.redis, ctx.redis_url, ctx.city, record.id, at=record.send_at)
        except CampaignError as exc:
            if ctx.redis.hget(campaign_key(record.id), "state") in ("queued", "sending", "done"):
                held = None  # queued by an earlier try whose record was not saved
            else:
                raise StaffError(f"送信できませんでした: {exc}") from None
        move(session, record, "schedule" if held else "queue", actor, scheduled_for=held)
        record.delivery_id, record.queued_at = record.id, utcnow()
        record.scheduled_for = dt.datetime.fromisoformat(held) if held else None
    return get(ctx, record_id)


def cancel(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    with locked(ctx, record_id, "campaign") as (session, record):
        if record.state in ("draft", "rejected", "awaiting_approval"):
            move(session, record, "discard", actor)
        else:
            if record.state in ("queued", "scheduled") and record.delivery_id:
                before = actions.cancel(ctx.redis, campaign_key(record.delivery_id))
                if before not in ("queued", "draft", ""):
                    raise Conflict("配信がすでに始まっているため取り消せません。")
            move(session, record, "cancel", actor)
    return get(ctx, record_id)


def preview(ctx: Context, data: Any) -> dict[str, Any]:
    """Each variant's message as LINE will show it (tracked link shown as an example), and the reach."""
    request, _ = parse(ctx, data)
    example = "https://example.invalid/r/preview" if request.survey.url else None
    cards = {v.name: campaigns.message_for("preview", request, v, example).to_dict() for v in request.variants}
    return {"messages": cards, "alt_text": {name: card.get("altText") for name, card in cards.items()},
            "reach": campaign_reach(ctx, request).as_dict()}


def campaign_reach(ctx: Context, request: CampaignRequest) -> reach.Reach:
    return reach.campaign_reach(ctx.redis, ctx.city.id, request.topics, request.areas,
                                [a.id for a in ctx.city.config.areas])
