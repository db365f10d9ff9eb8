"""The staff JSON API (bearer ADMIN_API_TOKEN): alerts and campaigns.

It calls the same domain functions as the CLI (bot.broadcast.actions, bot.broadcast.status).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

from bot.broadcast import actions, alerts, campaigns
from bot.broadcast import status as delivery_status

bp = Blueprint("staff_api", __name__, url_prefix="/api")


@bp.before_request
def require_token():  # noqa: ANN201
    token = current_app.extensions["bot"].settings.admin_api_token
    if not token:
        return jsonify({"message": "the staff API is off: set ADMIN_API_TOKEN"}), 503
    given = request.headers.get("Authorization", "")
    if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.get_secret_value().encode())):
        return jsonify({"message": "missing or wrong bearer token"}), 401
    return None


@bp.post("/alerts")
def create_alert():  # noqa: ANN201
    services = current_app.extensions["bot"]
    runtime = services.runtime
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"message": "send a JSON object"}), 400
    city = runtime.catalog.city(services.settings.city)
    try:
        status = actions.send_alert(runtime.redis.client, runtime.redis.url, city, data,
                                     services.settings.alert_rate_per_second)
    except alerts.AlertError as exc:
        return jsonify({"message": str(exc)}), 400
    return jsonify({"id": status.id, "status": f"/api/alerts/{status.id}",
                    "scheduled_for": status.scheduled_for}), 202


@bp.get("/alerts/<alert_id>")
def alert_status(alert_id: str):  # noqa: ANN201
    services = current_app.extensions["bot"]
    status = delivery_status.alert_status(services.runtime.redis.client, alert_id, services.settings.alert_rate_per_second)
    if status is None:
        return jsonify({"message": "no such alert"}), 404
    return jsonify(status.as_dict())


@bp.post("/campaigns")
def create_campaign():  # noqa: ANN201
    services = current_app.extensions["bot"]
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"message": "send a JSON object"}), 400
    city = services.runtime.catalog.city(services.settings.city)
    try:
        campaign_id = campaigns.create_campaign(services.runtime.redis.client, city.id,
                                                [a.id for a in city.config.areas], data)
    except campaigns.CampaignError as exc:
        return jsonify({"message": str(exc)}), 400
    return jsonify({"id": campaign_id, "stats": f"/api/campaigns/{campaign_id}/stats"}), 201


@bp.post("/campaigns/<campaign_id>/send")
def send_campaign(campaign_id: str):  # noqa: ANN201
    services = current_app.extensions["bot"]
    city = services.runtime.catalog.city(services.settings.city)
    try:
        held = actions.send_campaign(services.runtime.redis.client, services.runtime.redis.url, city, campaign_id)
    except LookupError:
        return jsonify({"message": "no such campaign"}), 404
    except campaigns.CampaignError as exc:
        return jsonify({"message": str(exc)}), 409
    return jsonify({"id": campaign_id, "state": "queued", "scheduled_for": held}), 202


@bp.get("/campaigns/<campaign_id>/stats")
def campaign_stats(campaign_id: str):  # noqa: ANN201
    report = campaigns.campaign_stats(current_app.extensions["bot"].runtime.redis.client, campaign_id)
    if report is None:
        return jsonify({"message": "no such campaign"}), 404
    if request.args.get("format") == "csv":
        return campaigns.stats_csv(report), 200, {"Content-Type": "text/csv; charset=utf-8"}
    return jsonify(report)


@bp.get("/campaigns/<campaign_id>/chart.svg")
def campaign_chart(campaign_id: str):  # noqa: ANN201
    report = campaigns.campaign_stats(current_app.extensions["bot"].runtime.redis.client, campaign_id)
    if report is None:
        return jsonify({"message": "no such campaign"}), 404
    return campaigns.chart_svg(report), 200, {"Content-Type": "image/svg+xml; charset=utf-8"}
