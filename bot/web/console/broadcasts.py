"""Alerts and campaigns in the console: compose with a live preview and the reach, the record
page with its actions (approve, reject, send, cancel), the history, and campaign results."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bot.broadcast import campaigns
from bot.broadcast import status as delivery_status
from bot.core.clock import JST
from bot.staff import alert_workflow, audit, campaign_workflow, records, transitions
from bot.staff.errors import Forbidden, StaffError
from bot.web.console.base import bp, needs
from bot.web.console.forms import ActionForm, AlertForm, CampaignForm, RejectForm
from bot.web.staff_access import actor, ctx

WORKFLOWS: dict[str, Any] = {"alert": alert_workflow, "campaign": campaign_workflow}


def _alert_choices(form: AlertForm) -> None:
    city = ctx().city
    form.topic.choices = [(t.id, t.label.get("ja")) for t in city.config.topics]
    form.areas.choices = [(a.id, a.label.get("ja")) for a in city.config.areas]  # "all" is one of them
    form.desk.choices = [("", "種類ごとの標準の窓口")] + sorted(
        ((d.id, d.name.get("ja")) for d in city.desks.values() if d.phones), key=lambda c: c[1])


def alert_data(form: AlertForm) -> dict[str, Any]:
    """The form as the staff API's JSON body (the same validation applies to both)."""
    data: dict[str, Any] = {
        "topic": form.topic.data, "areas": form.areas.data or [], "title": form.title.data or "",
        "body": form.body.data or "", "where_when": form.where_when.data or None,
        "countermeasures": [c for c in (form.countermeasure_1.data, form.countermeasure_2.data,
                                         form.countermeasure_3.data) if c and c.strip()],
        "desk": form.desk.data or None, "send_now": form.timing.data == "now",
    }
    if form.timing.data == "at":
        if not form.send_at.data:
            raise StaffError("予約日時を入力してください。")
        data["send_at"] = form.send_at.data.replace(tzinfo=JST).isoformat()
    if (form.en_title.data or "").strip() or (form.en_body.data or "").strip():
        data["en"] = {"title": form.en_title.data or "", "body": form.en_body.data or "",
                      "where_when": form.en_where_when.data or None}
    return data


def _fill_alert_form(form: AlertForm, record: Any) -> None:
    r = record.request
    form.topic.data, form.areas.data, form.title.data, form.body.data = r["topic"], r["areas"], r["title"], r["body"]
    form.where_when.data = r.get("where_when") or ""
    for n, text in enumerate((r.get("countermeasures") or [])[:3], start=1):
        getattr(form, f"countermeasure_{n}").data = text
    form.desk.data = r.get("desk") or ""
    if r.get("en"):
        form.en_title.data, form.en_body.data = r["en"]["title"], r["en"]["body"]
        form.en_where_when.data = r["en"].get("where_when") or ""
    form.timing.data = record.send_mode
    form.send_at.data = record.send_at.astimezone(JST).replace(tzinfo=None) if record.send_at else None


@bp.route("/alerts/new", methods=["GET", "POST"])
@bp.route("/alerts/<record_id>/edit", methods=["GET", "POST"])
def alert_form(record_id: str | None = None) -> ResponseReturnValue:
    form = AlertForm()
    _alert_choices(form)
    record = records.get(ctx(), record_id, "alert") if record_id else None
    if request.method == "GET" and record is not None:
        _fill_alert_form(form, record)
    if form.validate_on_submit():
        try:
            data = alert_data(form)
            if record is None:
                record = alert_workflow.draft(ctx(), actor(), data, submit=not form.save_only.data)
            else:
                record = alert_workflow.edit(ctx(), actor(), record.id, data)
                if not form.save_only.data and record.state == "draft":
                    record = alert_workflow.submit(ctx(), actor(), record.id)
            done = "下書きを保存しました。" if record.state == "draft" else "承認を依頼しました。承認者が確認します。"
            flash(done, "info")
            return redirect(url_for("console.record", kind="alert", record_id=record.id))
        except StaffError as exc:
            flash(exc.message, "error")
    status = 400 if request.method == "POST" else 200
    return render_template("admin/alert_form.html", form=form, record=record), status


@bp.post("/<any(alert, campaign):kind>/preview")
def preview(kind: str) -> ResponseReturnValue:
    """The live preview: JSON for the page's renderer (the same one /dev/chat draws with)."""
    if kind == "alert":
        form: Any = AlertForm()
        _alert_choices(form)
        build = alert_data
    else:
        form = CampaignForm()
        _campaign_choices(form)
        build = campaign_data
    if not form.validate_on_submit() and "csrf_token" in form.errors:
        return jsonify({"message": "ページの有効期限が切れました。再読み込みしてください。"}), 400
    try:
        return jsonify(WORKFLOWS[kind].preview(ctx(), build(form)))
    except StaffError as exc:
        return jsonify({"message": exc.message}), 400


@bp.get("/<any(alert, campaign):kind>/<record_id>")
def record(kind: str, record_id: str) -> ResponseReturnValue:
    try:
        row = records.get(ctx(), record_id, kind)
    except StaffError:
        abort(404)
    status = delivery_status.alert_status(ctx().redis, row.delivery_id, ctx().settings.alert_rate_per_second) \
        if kind == "alert" and row.delivery_id else None
    preview = None
    try:
        preview = WORKFLOWS[kind].preview(ctx(), {**row.request, "send_at": None})
    except StaffError:
        pass  # content changed since (a desk removed): the page still shows the record
    report = campaigns.campaign_stats(ctx().redis, row.delivery_id) if kind == "campaign" and row.delivery_id \
        else None
    trail = audit.entries(ctx().db, subject_id=row.id, limit=100)
    return render_template("admin/record.html", kind=kind, row=row, status=status, preview=preview, report=report,
                           trail=trail, action_form=ActionForm(), reject_form=RejectForm(),
                           labels=transitions.STATE_LABELS, sole_topics=transitions.SOLE_TOPICS)


@bp.post("/<any(alert, campaign):kind>/<record_id>/<any(submit, approve, cancel, send_alone):action>")
def act(kind: str, record_id: str, action: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        flash("ページの有効期限が切れました。もう一度操作してください。", "error")
    else:
        try:
            if action == "send_alone" and kind != "alert":
                raise StaffError("承認者ひとりで送れるのは緊急のお知らせだけです。")
            row = getattr(WORKFLOWS[kind], action)(ctx(), actor(), record_id)
            flash(f"{transitions.STATE_LABELS.get(row.state, row.state)}になりました。", "info")
        except Forbidden as exc:
            return render_template("admin/error.html", title="この操作はできません", message=exc.message,
                                   back=url_for("console.record", kind=kind, record_id=record_id)), 403
        except StaffError as exc:
            flash(exc.message, "error")
    return redirect(url_for("console.record", kind=kind, record_id=record_id))


@bp.post("/<any(alert, campaign):kind>/<record_id>/reject")
@needs("approver")
def reject(kind: str, record_id: str) -> ResponseReturnValue:
    form = RejectForm()
    if form.validate_on_submit():
        try:
            WORKFLOWS[kind].reject(ctx(), actor(), record_id, form.reason.data or "")
            flash("差し戻しました。作成者に理由が表示されます。", "info")
        except StaffError as exc:
            flash(exc.message, "error")
    else:
        flash("差し戻す理由を書いてください。", "error")
    return redirect(url_for("console.record", kind=kind, record_id=record_id))


@bp.get("/history")
def history() -> ResponseReturnValue:
    args = dict(request.args)
    for key in ("since", "until"):  # a date that does not parse is said and left out, not the whole search
        try:
            records.history_filters({key: args.get(key, "")})
        except StaffError as exc:
            flash(exc.message, "error")
            args.pop(key)
    filters = records.history_filters(args)
    city = ctx().city
    return render_template("admin/history.html", rows=records.history(ctx(), **filters), args=request.args,
                           labels=transitions.STATE_LABELS,
                           topics=[(t.id, t.label.get("ja")) for t in city.config.topics],
                           areas=[(a.id, a.label.get("ja")) for a in city.config.areas])


# ------------------------------------------------------------------ campaigns

def _campaign_choices(form: CampaignForm) -> None:
    city = ctx().city
    form.topics.choices = [("all", "登録者全員")] + [(t.id, t.label.get("ja")) for t in city.config.topics]
    form.areas.choices = [(a.id, a.label.get("ja")) for a in city.config.areas]  # "all" is one of them


def campaign_data(form: CampaignForm) -> dict[str, Any]:
    variants = [{"name": "A", "title": form.a_title.data or "", "text": form.a_text.data or "",
                 "button": form.a_button.data or "アンケートに答える"}]
    if (form.b_title.data or "").strip() or (form.b_text.data or "").strip():
        variants.append({"name": "B", "title": form.b_title.data or "", "text": form.b_text.data or "",
                         "button": form.b_button.data or "アンケートに答える"})
    questions = []
    for n in (1, 2, 3):
        text, options = getattr(form, f"q{n}").data, getattr(form, f"q{n}_options").data
        if text and text.strip():
            split = [o.strip() for o in (options or "").replace(",", "、").split("、") if o.strip()]
            questions.append({"text": text, "options": split})
    survey: dict[str, Any] = {"questions": questions}
    if (form.survey_url.data or "").strip():
        survey["url"] = form.survey_url.data.strip()
    data: dict[str, Any] = {"name": form.name.data or "", "topics": form.topics.data or ["all"],
                            "areas": form.areas.data or ["all"], "variants": variants, "survey": survey,
                            "track_clicks": bool(form.track_clicks.data)}
    if form.send_at.data:
        data["send_at"] = form.send_at.data.replace(tzinfo=JST).isoformat()
    return data


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_form() -> ResponseReturnValue:
    form = CampaignForm()
    _campaign_choices(form)
    if form.validate_on_submit():
        try:
            row = campaign_workflow.draft(ctx(), actor(), campaign_data(form), submit=not form.save_only.data)
            flash("承認を依頼しました。" if row.state == "awaiting_approval" else "下書きを保存しました。", "info")
            return redirect(url_for("console.record", kind="campaign", record_id=row.id))
        except StaffError as exc:
            flash(exc.message, "error")
    return render_template("admin/campaign_form.html", form=form), 400 if request.method == "POST" else 200


@bp.get("/campaign/<record_id>/results.csv")
def campaign_csv(record_id: str) -> ResponseReturnValue:
    try:
        row, report = records.campaign_report(ctx(), record_id)
    except StaffError:
        abort(404)
    with ctx().db.session() as session:
        audit.record(session, actor().name, "export", "campaign", record_id)
    questions = campaigns.CampaignRequest.model_validate(row.request).survey.questions
    return Response("\ufeff" + campaigns.stats_csv(report, questions), 200, {
        "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f"attachment; filename={record_id}.csv"})


@bp.get("/campaign/<record_id>/chart.svg")
def campaign_chart(record_id: str) -> ResponseReturnValue:
    try:
        _, report = records.campaign_report(ctx(), record_id)
    except StaffError:
        abort(404)
    return Response(campaigns.chart_svg(report), 200, {"Content-Type": "image/svg+xml; charset=utf-8"})
