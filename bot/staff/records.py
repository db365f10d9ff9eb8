"""What alerts and campaigns share in the records: the context the domain functions work in,
loading a record under a row lock, applying a transition (audited), the history query, and
keeping a record's state and figures in step with its delivery in Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.broadcast import campaigns
from bot.broadcast.status import alert_status
from bot.content.loader import City
from bot.core.clock import JST
from bot.settings import Settings
from bot.staff import audit, transitions
from bot.staff.db import Database
from bot.staff.errors import NotFound, StaffError
from bot.staff.models import Broadcast, Staff, utcnow
from bot.staff.roles import Actor

IN_FLIGHT = ("queued", "scheduled", "sending")
KIND_LABELS = {"alert": "お知らせ", "campaign": "キャンペーン"}


@dataclass
class Context:
    """What every staff action needs: the records, the delivery's Redis, the city, the settings."""

    db: Database
    redis: redis.Redis
    redis_url: str
    city: City
    settings: Settings


@contextmanager
def locked(ctx: Context, record_id: str, kind: str) -> Iterator[tuple[Session, Broadcast]]:
    """The record, locked for the rest of the unit of work (PostgreSQL: SELECT ... FOR UPDATE;
    SQLite serialises writers anyway), so two approvers pressing at once cannot both win."""
    with ctx.db.session() as session:
        record = session.get(Broadcast, record_id, with_for_update={"of": Broadcast})
        if record is None or record.kind != kind or record.city != ctx.city.id:
            raise NotFound(f"{KIND_LABELS[kind]}「{record_id}」は見つかりません。")
        yield session, record


def move(session: Session, record: Broadcast, action: str, actor: Actor | None, **detail: Any) -> None:
    """Apply one transition of the table (bot.staff.transitions) and audit it."""
    record.state = transitions.check(action, record.state, actor, author_id=record.author_id,
                                     topic=record.topic if record.kind == "alert" else None)
    record.updated_at = utcnow()
    if actor is not None:
        audit.record(session, actor.name, action, record.kind, record.id, **detail)


def get(ctx: Context, record_id: str, kind: str | None = None) -> Broadcast:
    with ctx.db.session() as session:
        record = session.get(Broadcast, record_id)
        if record is None or (kind and record.kind != kind) or record.city != ctx.city.id:
            raise NotFound(f"「{record_id}」は見つかりません。")
        session.expunge(record)
    return refresh(ctx, record)


def history(ctx: Context, *, kind: str | None = None, state: str | None = None, topic: str | None = None,
            area: str | None = None, author: str | None = None, since: dt.date | None = None,
            until: dt.date | None = None, text: str | None = None, limit: int = 200) -> list[Broadcast]:
    """Newest first, filtered as staff search the history."""
    query = select(Broadcast).where(Broadcast.city == ctx.city.id).order_by(Broadcast.created_at.desc()).limit(limit)
    if kind:
        query = query.where(Broadcast.kind == kind)
    if state:
        query = query.where(Broadcast.state == state)
    if topic:
        query = query.where(Broadcast.topic.contains(topic))
    if area:
        query = query.where(or_(Broadcast.areas.contains(area), Broadcast.areas.contains("all")))
    if author:
        query = query.join(Staff, Broadcast.author_id == Staff.id).where(Staff.name == author)
    if since:
        query = query.where(Broadcast.created_at >= dt.datetime.combine(since, dt.time(), JST))
    if until:
        query = query.where(Broadcast.created_at < dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), JST))
    if text:
        query = query.where(Broadcast.title.contains(text))
    with ctx.db.session() as session:
        rows = list(session.scalars(query))
        for row in rows:
            _ = row.author, row.approver  # loaded before the session ends
        session.expunge_all()
    return [refresh(ctx, row) if row.state in IN_FLIGHT else row for row in rows]


def refresh(ctx: Context, record: Broadcast) -> Broadcast:
    """Copy the delivery's state and figures from Redis into the record while it is in flight
    (the record keeps them after Redis has forgotten the delivery)."""
    if record.state not in IN_FLIGHT or not record.delivery_id:
        return record
    figures: tuple[Any, ...] | None
    if record.kind == "alert":
        status = alert_status(ctx.redis, record.delivery_id, ctx.settings.alert_rate_per_second)
        figures = None if status is None else (status.state, status.recipients, status.sent, status.failed,
                                               status.error)
    else:
        report = campaigns.campaign_stats(ctx.redis, record.delivery_id)
        figures = None if report is None else (
            report.get("state"), report.get("recipients"),
            sum(v.get("delivered") or 0 for v in report.get("variants", {}).values()), None, None)
    if figures is None:
        return record
    state, recipients, sent, failed, error = figures
    action = {"sending": "start", "done": "finish", "stopped_monthly_limit": "stop"}.get(state or "")
    with ctx.db.session() as session:
        row = session.get(Broadcast, record.id, with_for_update={"of": Broadcast})
        if row is None:
            return record
        if action and row.state in IN_FLIGHT and row.state != transitions.TRANSITIONS[action].target:
            if action != "start" and row.state != "sending":
                move(session, row, "start", None)  # it started and ended between two looks
            move(session, row, action, None)
            if action != "start":
                row.finished_at = utcnow()
                audit.record(session, None, "delivered" if action == "finish" else "stopped", row.kind, row.id,
                             recipients=recipients, sent=sent, failed=failed)
        row.recipients, row.sent, row.failed, row.error = recipients, sent, failed, error
        _ = row.author, row.approver
        session.flush()
        session.expunge(row)
        return row


def history_filters(args: Mapping[str, str]) -> dict[str, Any]:
    """The history's query parameters (console and staff API alike) as `history` arguments;
    StaffError for a date not written as 2026-12-07."""
    def day(value: str | None) -> dt.date | None:
        try:
            return dt.date.fromisoformat(value) if value else None
        except ValueError:
            raise StaffError(f"日付は 2026-12-07 の形で指定してください（{str(value)[:20]}）。") from None

    return {"kind": args.get("kind") or None, "state": args.get("state") or None, "topic": args.get("topic") or None,
            "area": args.get("area") or None, "author": args.get("author") or None, "text": args.get("q") or None,
            "since": day(args.get("since")), "until": day(args.get("until"))}


def campaign_report(ctx: Context, record_id: str) -> tuple[Broadcast, dict[str, Any]]:
    """A campaign's record and its results; StaffError while it has not been sent."""
    record = get(ctx, record_id, "campaign")
    report = campaigns.campaign_stats(ctx.redis, record.delivery_id or "")
    if report is None:
        raise StaffError("まだ送信されていないため、結果はありません。")
    return record, report


def as_dict(record: Broadcast) -> dict[str, Any]:
    """A record for the staff API."""
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
