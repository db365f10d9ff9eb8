"""For admins: the audit log (and its CSV) and staff accounts. For everyone: the content the
bot answers with, read-only, with desks due for re-confirmation flagged."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bot.core.clock import JST
from bot.staff import accounts, audit
from bot.staff.errors import StaffError
from bot.web.console.base import bp, needs
from bot.web.console.forms import DisableForm, StaffForm
from bot.web.console.overview import DESK_RECHECK_DAYS
from bot.web.staff_access import actor, ctx


@bp.get("/audit")
@needs("admin")
def audit_page() -> ResponseReturnValue:
    rows = audit.entries(ctx().db, limit=500, actor=request.args.get("actor") or None,
                         subject_id=request.args.get("subject") or None)
    return render_template("admin/audit.html", rows=rows, labels=audit.ACTION_LABELS, args=request.args)


@bp.get("/audit.csv")
@needs("admin")
def audit_csv() -> ResponseReturnValue:
    rows = audit.entries(ctx().db, limit=100_000)
    with ctx().db.session() as session:
        audit.record(session, actor().name, "export", "audit", "audit", rows=len(rows))
    return Response(audit.to_csv(rows), 200, {"Content-Type": "text/csv; charset=utf-8",
                                              "Content-Disposition": "attachment; filename=audit.csv"})


@bp.route("/staff", methods=["GET", "POST"])
@needs("admin")
def staff_page() -> ResponseReturnValue:
    form = StaffForm()
    database = current_app.extensions["bot"].database
    if form.validate_on_submit():
        try:
            accounts.add_staff(database, actor().name, form.name.data or "", form.role.data or "",
                               form.password.data or "")
            flash(f"職員「{form.name.data}」を作りました。初期パスワードを本人に安全な方法で伝えてください。", "info")
            return redirect(url_for("console.staff_page"))
        except StaffError as exc:
            flash(exc.message, "error")
    return render_template("admin/staff.html", form=form, staff=accounts.all_staff(database),
                           disable_form=DisableForm()), 400 if request.method == "POST" else 200


@bp.post("/staff/disable")
@needs("admin")
def staff_disable() -> ResponseReturnValue:
    form = DisableForm()
    if form.validate_on_submit():
        if form.name.data == actor().name:
            flash("自分のアカウントは停止できません。", "error")
        else:
            try:
                accounts.disable(current_app.extensions["bot"].database, actor().name, form.name.data or "")
                flash(f"職員「{form.name.data}」を停止しました。APIトークンも無効になりました。", "info")
            except StaffError as exc:
                flash(exc.message, "error")
    return redirect(url_for("console.staff_page"))


def last_evaluation(data_dir: Path) -> dict | None:
    """The figures `python -m bot evaluate --json` saved last (var/last-evaluate.json), if any."""
    path = data_dir / "last-evaluate.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


@bp.get("/content")
def content_page() -> ResponseReturnValue:
    city = ctx().city
    catalog = current_app.extensions["bot"].runtime.catalog
    limit = dt.datetime.now(JST).date() - dt.timedelta(days=DESK_RECHECK_DAYS)
    desks = sorted(city.desks.values(), key=lambda d: d.last_checked)
    return render_template("admin/content.html", city=city, desks=desks, limit=limit, intents=catalog.intents,
                           evaluation=last_evaluation(ctx().settings.data_dir))
