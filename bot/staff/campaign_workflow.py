"""Campaigns in the records: how a campaign request is read, filled into its record, previewed
and handed to delivery; the workflow steps themselves are bot.staff.workflow's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.broadcast import actions, campaigns, reach
from bot.broadcast.campaigns import CampaignError, CampaignRequest
from bot.core.keys import campaign_key
from bot.staff.errors import StaffError
from bot.staff.models import Broadcast
from bot.staff.records import Context
from bot.staff.workflow import Workflow


class CampaignWorkflow(Workflow):
    kind = "campaign"

    def parse(self, ctx: Context, data: dict[str, Any], at: dt.datetime | None) -> CampaignRequest:
        try:
            return campaigns.validate(data, [a.id for a in ctx.city.config.areas])
        except CampaignError as exc:
            raise StaffError(str(exc)) from None

    def fill(self, record: Broadcast, request: CampaignRequest, at: dt.datetime | None) -> None:
        record.topic, record.areas, record.title = ",".join(request.topics), ",".join(request.areas), request.name
        record.request = json.loads(request.model_dump_json())
        record.send_mode, record.send_at = ("at" if at else "asap"), at

    def new_id(self) -> str:
        return campaigns.new_id()

    def deliver(self, ctx: Context, record: Broadcast) -> str | None:
        city_areas = [a.id for a in ctx.city.config.areas]
        try:
            campaigns.create_campaign(ctx.redis, ctx.city.id, city_areas, record.request, campaign_id=record.id)
            return actions.send_campaign(ctx.redis, ctx.redis_url, ctx.city, record.id, at=record.send_at)
        except CampaignError as exc:
            if ctx.redis.hget(campaign_key(record.id), "state") in ("queued", "sending", "done"):
                return None  # queued by an earlier try whose record was not saved
            raise StaffError(f"送信できませんでした: {exc}") from None

    def delivery_key(self, delivery_id: str) -> str:
        return campaign_key(delivery_id)

    def preview(self, ctx: Context, data: Any) -> dict[str, Any]:
        """Each variant's message as LINE will show it (the tracked link as an example), and the reach."""
        request, _ = self.read(ctx, data)
        example = "https://example.invalid/r/preview" if request.survey.url else None
        cards = {v.name: campaigns.message_for("preview", request, v, example).to_dict() for v in request.variants}
        count = reach.campaign_reach(ctx.redis, ctx.city.id, request.topics, request.areas,
                                     [a.id for a in ctx.city.config.areas])
        return {"messages": cards, "alt_text": {name: card.get("altText") for name, card in cards.items()},
                "reach": count.as_dict()}


WORKFLOW = CampaignWorkflow()
draft, edit, submit, reject, approve, cancel, preview = (
    WORKFLOW.draft, WORKFLOW.edit, WORKFLOW.submit, WORKFLOW.reject, WORKFLOW.approve, WORKFLOW.cancel,
    WORKFLOW.preview)
