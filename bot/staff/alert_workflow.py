"""Alerts in the records: draft, edit, submit, approve, reject, send, cancel. The console,
the staff API and the CLI call these; delivery itself is bot.broadcast's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.broadcast import actions, alerts, reach
from bot.broadcast.alerts import AlertError, AlertRequest
from bot.core.clock import JST
from bot.core.keys import alert_key
from bot.staff import audit, records
from bot.staff.errors import Conflict, StaffError
from bot.staff.models import Broadcast, utcnow
from bot.staff.records import Context, get, locked, move, parse_send_at
from bot.staff.roles import Actor


def parse(ctx: Context, data: Any) -> tuple[AlertRequest, dt.datetime | None]:
    """What staff wrote → the validated alert and the chosen send time (None: as soon as
    quiet hours allow, or now with send_now). StaffError with every problem at once."""
    if not isinstance(data, dict):
        raise StaffError("JSONのオブジェクトで送ってください。")
    data = dict(data)
    at = parse_send_at(data)
    try:
        return alerts.validate_request(data, ctx.city), at
    except AlertError as exc:
        raise StaffError(str(exc)) from None


def _fill(record: Broadcast, request: AlertRequest, at: dt.datetime | None) -> None:
    record.topic, record.areas, record.title = request.topic, ",".join(request.areas), request.title
    record.request = json.loads(request.model_dump_json())
    record.send_mode = "at" if at else ("now" if request.send_now else "asap")
    record.send_at = at


def draft(ctx: Context, actor: Actor, data: Any, *, submit: bool = True) -> Broadcast:
    """A new alert record (awaiting approval unless `submit` is False)."""
    request, at = parse(ctx, data)
    record = Broadcast(id=alerts.new_id(), kind="alert", city=ctx.city.id, state="draft", author_id=actor.id)
    _fill(record, request, at)
    with ctx.db.session() as session:
        session.add(record)
        audit.record(session, actor.name, "draft", "alert", record.id, title=record.title)
        if submit:
            move(session, record, "submit", actor)
    return get(ctx, record.id)


def edit(ctx: Context, actor: Actor, record_id: str, data: Any) -> Broadcast:
    request, at = parse(ctx, data)
    with locked(ctx, record_id, "alert") as (session, record):
        move(session, record, "edit", actor)
        if record.state == "rejected":
            record.state = "draft"
        _fill(record, request, at)
    return get(ctx, record_id)


def submit(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    return records.submit(ctx, actor, record_id, "alert")


def reject(ctx: Context, actor: Actor, record_id: str, reason: str) -> Broadcast:
    return records.reject(ctx, actor, record_id, reason, "alert")


def discard(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    with locked(ctx, record_id, "alert") as (session, record):
        move(session, record, "discard", actor)
    return get(ctx, record_id)


def approve(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    """Approve and send as the draft says (now, at its time, or after quiet hours)."""
    with locked(ctx, record_id, "alert") as (session, record):
        move(session, record, "approve", actor)
        record.approver_id, record.approved_at = actor.id, utcnow()
    return dispatch(ctx, actor, record_id)


def send_alone(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    """An emergency or missing-person alert sent by one approver, marked as such."""
    with locked(ctx, record_id, "alert") as (session, record):
        move(session, record, "send_alone", actor)
        record.approver_id, record.approved_at, record.sole_approval = actor.id, utcnow(), True
    return dispatch(ctx, actor, record_id)


def dispatch(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    """Hand an approved alert to delivery. Idempotent on the Redis side (the record's id is the
    alert's), so a retry after a failure here never queues it twice."""
    with locked(ctx, record_id, "alert") as (session, record):
        action = "schedule" if record.send_at and record.send_at > utcnow() else "queue"
        try:
            status = actions.send_alert(ctx.redis, ctx.redis_url, ctx.city, record.request,
                                        ctx.settings.alert_rate_per_second, at=record.send_at, alert_id=record.id)
        except AlertError as exc:
            raise StaffError(f"送信できませんでした: {exc}") from None
        held = dt.datetime.fromisoformat(status.scheduled_for) if status.scheduled_for else None
        if held is not None:
            action = "schedule"
        move(session, record, action, actor, scheduled_for=status.scheduled_for)
        record.delivery_id, record.queued_at, record.scheduled_for = record.id, utcnow(), held
    return get(ctx, record_id)


def cancel(ctx: Context, actor: Actor, record_id: str) -> Broadcast:
    """Cancel an approved, queued or scheduled alert before a worker starts it; a draft
    is discarded instead."""
    with locked(ctx, record_id, "alert") as (session, record):
        if record.state in ("draft", "rejected", "awaiting_approval"):
            move(session, record, "discard", actor)
        else:
            if record.state in ("queued", "scheduled") and record.delivery_id:
                before = actions.cancel(ctx.redis, alert_key(record.delivery_id))
                if before not in ("queued", ""):
                    raise Conflict("配信がすでに始まっているため取り消せません。")
            move(session, record, "cancel", actor)
    return get(ctx, record_id)


def preview(ctx: Context, data: Any) -> dict[str, Any]:
    """The alert as LINE will show it: the card (Flex JSON, ja and en), the lock-screen text
    (altText), and how many residents it reaches now."""
    request, at = parse(ctx, data)
    cards = {lang: alerts.render(request, ctx.city, lang).to_dict()
             for lang in alerts.LANGUAGES if lang == "ja" or request.en}
    release = alerts.release_time(request, ctx.city, dt.datetime.now(JST), at)
    return {"messages": cards, "alt_text": {lang: card["altText"] for lang, card in cards.items()},
            "reach": alert_reach(ctx, request).as_dict(),
            "goes_out": release.isoformat() if release else None}


def alert_reach(ctx: Context, request: AlertRequest) -> reach.Reach:
    digest = ctx.city.config.digest
    return reach.alert_reach(ctx.redis, ctx.city.id, request.topic, request.areas,
                             [a.id for a in ctx.city.config.areas], ctx.settings.alert_daily_cap,
                             digest.topics if digest else ())


def as_dict(record: Broadcast) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.astimezone(JST).isoformat() if value else None

    return {"id": record.id, "kind": record.kind, "state": record.state, "topic": record.topic,
            "areas": record.areas.split(","), "title": record.title, "request": record.request,
            "send_mode": record.send_mode, "send_at": iso(record.send_at),
            "author": record.author.name if record.author else None,
            "approver": record.approver.name if record.approver else None,
            "sole_approval": record.sole_approval, "reject_reason": record.reject_reason,
            "created_at": iso(record.created_at), "approved_at": iso(record.approved_at),
            "queued_at": iso(record.queued_at), "scheduled_for": iso(record.scheduled_for),
            "finished_at": iso(record.finished_at), "recipients": record.recipients, "sent": record.sent,
            "failed": record.failed, "error": record.error}
