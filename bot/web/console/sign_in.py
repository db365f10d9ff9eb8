"""Login and logout."""

from __future__ import annotations

import time

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from bot.staff import accounts, audit
from bot.web.console.base import bp, safe_next
from bot.web.console.forms import ActionForm, LoginForm
from bot.web.staff_access import actor


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        found = accounts.authenticate(current_app.extensions["bot"].database, form.name.data or "",
                                      form.password.data or "")
        if found is None:
            flash("職員名またはパスワードが違います。", "error")
            return render_template("admin/login.html", form=form), 401
        session.clear()  # a fresh session: nothing from before the login carries over
        session.permanent = True
        session["staff_id"], session["seen"] = found.id, int(time.time())
        return redirect(safe_next(request.args.get("next")))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        with current_app.extensions["bot"].database.session() as db_session:
            audit.record(db_session, actor().name, "logout", "session", None)
        session.clear()
        flash("ログアウトしました。", "info")
    return redirect(url_for("console.login"))
