"""The staff JSON API: per-staff bearer tokens (`python -m bot staff token NAME`), the same roles
and transitions as the console, through the same domain functions (bot.staff)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from bot.broadcast import campaigns
from bot.broadcast import status as delivery_status
from bot.staff import accounts, alert_workflow, audit, campaign_workflow, records
from bot.staff.errors import Forbidden, StaffError
from bot.web.staff_access import actor, ctx

bp = Blueprint("staff_api", __name__, url_prefix="/api")
WORKFLOWS: dict[str, Any] = {"alerts": alert_workflow, "campaigns": campaign_workflow}
KINDS = {"alerts": "alert", "campaigns": "campaign"}


@bp.before_request
def authenticate() -> ResponseReturnValue | None:
    given = request.headers.get("Authorization", "")
    found = accounts.actor_for_token(current_app.extensions["bot"].database, given[7:]) \
        if given.startswith("Bearer ") and len(given) < 200 else None
    if found is None:
        return jsonify({"message": "APIトークンがないか、正しくありません"
                                   "（python -m bot staff token NAME で発行）。"}), 401
    g.actor = found
    return None


@bp.errorhandler(StaffError)
def staff_error(exc: StaffError) -> ResponseReturnValue:
    return jsonify({"message": exc.message}), exc.status


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise StaffError("JSONのオブジェクトで送ってください（Content-Type: application/json）。")
    return data


def record_json(kind: str, record: Any) -> dict[str, Any]:
    out = records.as_dict(record)
    if kind == "alerts" and record.delivery_id:
        context = ctx()
        status = delivery_status.alert_status(context.redis, record.delivery_id, context.settings.alert_rate_per_second)
        out["delivery"] = status.as_dict() if status else None
    return out


@bp.post("/<any(alerts, campaigns):kind>")
def create(kind: str) -> ResponseReturnValue:
    """A draft awaiting approval (unless "submit": false), with its reach now."""
    data = body()
    submit = data.pop("submit", True)
    if not isinstance(submit, bool):
        raise StaffError("submit: true か false で指定してください。")
    workflow = WORKFLOWS[kind]
    preview = workflow.preview(ctx(), data)
    record = workflow.draft(ctx(), actor(), data, submit=submit)
    return jsonify({**record_json(kind, record), "reach": preview["reach"]}), 201


@bp.post("/<any(alerts, campaigns):kind>/preview")
def preview(kind: str) -> ResponseReturnValue:
    return jsonify(WORKFLOWS[kind].preview(ctx(), body()))


@bp.get("/<any(alerts, campaigns):kind>")
def history(kind: str) -> ResponseReturnValue:
    rows = records.history(ctx(), **{**records.history_filters(request.args), "kind": KINDS[kind]})
    return jsonify({"items": [records.as_dict(r) for r in rows]})


@bp.get("/<any(alerts, campaigns):kind>/<record_id>")
def show(kind: str, record_id: str) -> ResponseReturnValue:
    return jsonify(record_json(kind, records.get(ctx(), record_id, KINDS[kind])))


@bp.put("/<any(alerts, campaigns):kind>/<record_id>")
def edit(kind: str, record_id: str) -> ResponseReturnValue:
    return jsonify(record_json(kind, WORKFLOWS[kind].edit(ctx(), actor(), record_id, body())))


@bp.post("/<any(alerts, campaigns):kind>/<record_id>/<any(submit, approve, cancel, send_alone):action>")
def act(kind: str, record_id: str, action: str) -> ResponseReturnValue:
    workflow = WORKFLOWS[kind]
    if action == "send_alone" and kind != "alerts":
        raise Forbidden("承認者ひとりで送れるのは緊急のお知らせだけです。")
    record = getattr(workflow, action)(ctx(), actor(), record_id)
    return jsonify(record_json(kind, record))


@bp.post("/<any(alerts, campaigns):kind>/<record_id>/reject")
def reject(kind: str, record_id: str) -> ResponseReturnValue:
    reason = body().get("reason")
    record = WORKFLOWS[kind].reject(ctx(), actor(), record_id, reason if isinstance(reason, str) else "")
    return jsonify(record_json(kind, record))


@bp.get("/campaigns/<record_id>/stats")
def campaign_stats(record_id: str) -> ResponseReturnValue:
    record, report = records.campaign_report(ctx(), record_id)
    if request.args.get("format") == "csv":
        _audit_export(record_id)
        questions = campaigns.CampaignRequest.model_validate(record.request).survey.questions
        return Response(campaigns.stats_csv(report, questions), 200, {"Content-Type": "text/csv; charset=utf-8"})
    return jsonify(report)


@bp.get("/campaigns/<record_id>/chart.svg")
def campaign_chart(record_id: str) -> ResponseReturnValue:
    _, report = records.campaign_report(ctx(), record_id)
    return Response(campaigns.chart_svg(report), 200, {"Content-Type": "image/svg+xml; charset=utf-8"})


def _audit_export(subject: str) -> None:
    with ctx().db.session() as session:
        audit.record(session, actor().name, "export", "audit" if subject == "audit" else "campaign", subject)


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    if not actor().can("admin"):
        raise Forbidden("監査ログは管理者だけが見られます。")
    rows = audit.entries(ctx().db, limit=min(int(request.args.get("limit", "500") or 500), 5000),
                         actor=request.args.get("actor") or None, subject_id=request.args.get("subject") or None)
    if request.args.get("format") == "csv":
        _audit_export("audit")
        return Response(audit.to_csv(rows), 200, {"Content-Type": "text/csv; charset=utf-8",
                                                   "Content-Disposition": "attachment; filename=audit.csv"})
    return jsonify({"items": [audit.as_dict(r) for r in rows]})
