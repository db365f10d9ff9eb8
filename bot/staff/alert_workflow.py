"""Alerts in the records: how an alert request is read, filled into its record, previewed and
handed to delivery; the workflow steps themselves are bot.staff.workflow's. The console, the
staff API and the CLI call the functions at the bottom."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.broadcast import actions, alerts, reach
from bot.broadcast.alerts import AlertError, AlertRequest
from bot.core.clock import JST
from bot.core.keys import alert_key
from bot.staff.errors import StaffError
from bot.staff.models import Broadcast, utcnow
from bot.staff.records import Context, locked, move
from bot.staff.roles import Actor
from bot.staff.workflow import Workflow


class AlertWorkflow(Workflow):
    kind = "alert"

    def parse(self, ctx: Context, data: dict[str, Any], at: dt.datetime | None) -> AlertRequest:
        try:
            return alerts.validate_request(data, ctx.city)
        except AlertError as exc:
            raise StaffError(str(exc)) from None

    def fill(self, record: Broadcast, request: AlertRequest, at: dt.datetime | None) -> None:
        record.topic, record.areas, record.title = request.topic, ",".join(request.areas), request.title
        record.request = json.loads(request.model_dump_json())
        record.send_mode = "at" if at else ("now" if request.send_now else "asap")
        record.send_at = at

    def new_id(self) -> str:
        return alerts.new_id()

    def deliver(self, ctx: Context, record: Broadcast) -> str | None:
        try:
            status = actions.send_alert(ctx.redis, ctx.redis_url, ctx.city, record.request,
                                        ctx.settings.alert_rate_per_second, at=record.send_at, alert_id=record.id)
        except AlertError as exc:
            raise StaffError(f"送信できませんでした: {exc}") from None
        return status.scheduled_for

    def delivery_key(self, delivery_id: str) -> str:
        return alert_key(delivery_id)

    def send_alone(self, ctx: Context, actor: Actor, record_id: str) -> Broadcast:
        """An emergency or missing-person alert sent by one approver, marked as such."""
        with locked(ctx, record_id, self.kind) as (session, record):
            move(session, record, "send_alone", actor)
            record.approver_id, record.approved_at, record.sole_approval = actor.id, utcnow(), True
        return self.dispatch(ctx, actor, record_id)

    def preview(self, ctx: Context, data: Any) -> dict[str, Any]:
        """The alert as LINE will show it: the card (Flex JSON, ja and en), the lock-screen text
        (altText), when it goes out, and how many residents it reaches now."""
        request, at = self.read(ctx, data)
        cards = {lang: alerts.render(request, ctx.city, lang).to_dict()
                 for lang in alerts.LANGUAGES if lang == "ja" or request.en}
        release = alerts.release_time(request, ctx.city, dt.datetime.now(JST), at)
        digest = ctx.city.config.digest
        count = reach.alert_reach(ctx.redis, ctx.city.id, request.topic, request.areas,
                                  [a.id for a in ctx.city.config.areas], ctx.settings.alert_daily_cap,
                                  digest.topics if digest else ())
        return {"messages": cards, "alt_text": {lang: card["altText"] for lang, card in cards.items()},
                "reach": count.as_dict(), "goes_out": release.isoformat() if release else None}


WORKFLOW = AlertWorkflow()
draft, edit, submit, reject, approve, send_alone, cancel, preview = (
    WORKFLOW.draft, WORKFLOW.edit, WORKFLOW.submit, WORKFLOW.reject, WORKFLOW.approve, WORKFLOW.send_alone,
    WORKFLOW.cancel, WORKFLOW.preview)
