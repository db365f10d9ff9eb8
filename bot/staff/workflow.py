"""The approval workflow alerts and campaigns share: draft, edit, submit, reject, approve (and
send), cancel. Each step moves the record through the one table (bot.staff.transitions) under
a row lock and is audited; a kind (bot.staff.alert_workflow, campaign_workflow) says only how
its request is read and how it is handed to delivery."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.broadcast import actions
from bot.core.clock import JST
from bot.staff import audit, transitions
from bot.staff.errors import Conflict, StaffError
from bot.staff.models import Broadcast, utcnow
from bot.staff.records import Context, get, locked, move
from bot.staff.roles import Actor


class Workflow:
    kind: str

    # ------------------------------------------------------------ what a kind says

    def parse(self, ctx: Context, data: dict[str, Any], at: dt.datetime | None) -> Any:
        """The validated request (data without send_at); StaffError with every problem at once."""
        raise NotImplementedError

    def fill(self, record: Broadcast, request: Any, at: dt.datetime | None) -> None:
        raise NotImplementedError

    def new_id(self) -> str:
        raise NotImplementedError

    def deliver(self, ctx: Context, record: Broadcast) -> str | None:
        """Store and queue the record's delivery in Redis under the record's id (a second call
        finds it queued and queues nothing); returns when it goes out (ISO) if held back."""
        raise NotImplementedError

    def delivery_key(self, delivery_id: str) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------ the shared steps

    def read(self, ctx: Context, data: Any) -> tuple[Any, dt.datetime | None]:
        """What staff sent → the validated request and the chosen send time (None: none chosen)."""
        if not isinstance(data, dict):
            raise StaffError("JSONのオブジェクトで送ってください。")
        data = dict(data)
        at = parse_send_at(data)
        return self.parse(ctx, data, at), at

    def draft(self, ctx: Context, actor: Actor, data: Any, *, submit: bool = True) -> Broadcast:
        """A new record, awaiting approval unless `submit` is False."""
        request, at = self.read(ctx, data)
        record = Broadcast(id=self.new_id(), kind=self.kind, city=ctx.city.id, state="draft", author_id=actor.id)
        self.fill(record, request, at)
        with ctx.db.session() as session:
            session.add(record)
            audit.record(session, actor.name, "draft", self.kind, record.id, title=record.title)
            if submit:
                move(session, record, "submit", actor)
        return get(ctx, record.id)

    def edit(self, ctx: Context, actor: Actor, record_id: str, data: Any) -> Broadcast:
        request, at = self.read(ctx, data)
        with locked(ctx, record_id, self.kind) as (session, record):
            move(session, record, "edit", actor)
            if record.state == "rejected":
                record.state = "draft"
            self.fill(record, request, at)
        return get(ctx, record_id)

    def submit(self, ctx: Context, actor: Actor, record_id: str) -> Broadcast:
        with locked(ctx, record_id, self.kind) as (session, record):
            move(session, record, "submit", actor)
        return get(ctx, record_id)

    def reject(self, ctx: Context, actor: Actor, record_id: str, reason: str) -> Broadcast:
        """Back to the author, with the reason they will read."""
        reason = (reason or "").strip()
        if not reason:
            raise StaffError("差し戻す理由を書いてください（作成者に伝わります）。")
        with locked(ctx, record_id, self.kind) as (session, record):
            move(session, record, "reject", actor, reason=reason[:500])
            record.reject_reason = reason[:500]
        return get(ctx, record_id)

    def approve(self, ctx: Context, actor: Actor, record_id: str) -> Broadcast:
        """Approve and send as the draft says (now, at its time, or after quiet hours)."""
        with locked(ctx, record_id, self.kind) as (session, record):
            move(session, record, "approve", actor)
            record.approver_id, record.approved_at = actor.id, utcnow()
        return self.dispatch(ctx, actor, record_id)

    def dispatch(self, ctx: Context, actor: Actor, record_id: str) -> Broadcast:
        """Hand an approved record to delivery. The table is asked before anything reaches
        Redis, and a retry after a failure here finds the delivery queued already."""
        with locked(ctx, record_id, self.kind) as (session, record):
            transitions.check("queue", record.state, actor)
            held = self.deliver(ctx, record)
            move(session, record, "schedule" if held else "queue", actor, scheduled_for=held)
            record.delivery_id, record.queued_at = record.id, utcnow()
            record.scheduled_for = dt.datetime.fromisoformat(held) if held else None
        return get(ctx, record_id)

    def cancel(self, ctx: Context, actor: Actor, record_id: str) -> Broadcast:
        """Cancel an approved, queued or scheduled delivery before a worker starts it (one atomic
        step in Redis against the worker's start); a draft is discarded instead."""
        with locked(ctx, record_id, self.kind) as (session, record):
            if record.state in ("draft", "rejected", "awaiting_approval"):
                move(session, record, "discard", actor)
            else:
                transitions.check("cancel", record.state, actor)  # before Redis is touched
                if record.state in ("queued", "scheduled") and record.delivery_id:
                    before = actions.cancel(ctx.redis, self.delivery_key(record.delivery_id))
                    if before not in ("queued", "draft", ""):
                        raise Conflict("配信がすでに始まっているため取り消せません。")
                move(session, record, "cancel", actor)
        return get(ctx, record_id)


def parse_send_at(data: dict[str, Any]) -> dt.datetime | None:
    """Takes "send_at" (ISO; JST when no zone is given) out of what staff sent."""
    value = data.pop("send_at", None)
    if value in (None, ""):
        return None
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise StaffError("send_at: 日時は 2026-12-08T09:00 の形で入力してください。") from None
    at = at.replace(tzinfo=JST) if at.tzinfo is None else at
    if at < dt.datetime.now(JST) - dt.timedelta(minutes=1):
        raise StaffError("send_at: 過去の日時は選べません。")
    return at
