"""What every console page shares: the blueprint, the signed-in check, roles, filters.

The staff console (/admin): Japanese pages for city staff who are not programmers. Every
page needs a signed-in account; each action checks its role on the server and goes through
the same domain functions as the staff API and the CLI (bot.staff)."""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from bot.core.clock import JST
from bot.staff import accounts, audit
from bot.staff.roles import ROLE_LABELS
from bot.web.staff_access import actor, ctx

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="../templates",
               static_folder="../static", static_url_path="/static")
OPEN = {"console.login", "console.static"}
DETAIL_LABELS = {"title": "見出し", "reason": "理由", "scheduled_for": "配信予定", "recipients": "対象",
                 "sent": "送信", "failed": "失敗", "role": "役割", "name": "職員名", "count": "件数", "rows": "行数"}


@bp.before_request
def signed_in() -> ResponseReturnValue | None:
    """Every page but the login needs an active account and a session seen within
    BOT_SESSION_MINUTES; an idle session ends (and says so)."""
    if request.endpoint in OPEN:
        return None
    staff_id, seen = session.get("staff_id"), session.get("seen", 0)
    limit = current_app.extensions["bot"].settings.session_minutes * 60
    found = accounts.active(current_app.extensions["bot"].database, staff_id) if staff_id else None
    if found is None or time.time() - seen > limit:
        if staff_id:
            flash("しばらく操作がなかったため、ログアウトしました。もう一度ログインしてください。", "info")
        session.clear()
        back = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=back))
    session["seen"] = int(time.time())
    g.actor = found
    return None


def needs(role: str) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    """The view needs at least `role`; anyone less gets a 403 page saying which role."""

    def wrap(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if not actor().can(role):
                return render_template("admin/error.html", title="権限がありません",
                                       message=f"このページ・操作には「{ROLE_LABELS[role]}」以上の権限が"
                                               "必要です。"), 403
            return view(*args, **kwargs)

        return run

    return wrap


@bp.app_context_processor
def console_globals() -> dict[str, Any]:
    return {"me": g.get("actor"), "role_labels": ROLE_LABELS}


@bp.app_template_filter("names")
def names(ids: str) -> str:
    """A record's topics or areas ("fraud", "chuo,kita") as staff read them (詐欺・闇バイト, 中央区・北区)."""
    config = ctx().city.config
    known = {t.id: t.label.get("ja") for t in config.topics} | {a.id: a.label.get("ja") for a in config.areas}
    return "・".join(known.get(i, i) for i in ids.split(",") if i)


@bp.app_template_filter("verdict")
def verdict(text: str) -> str:
    """The A/B verdict (bot.broadcast.stats.compare) in staff's words; the p-value stays as it is."""
    text = str(text)
    if text == "not measured":
        return "測定していません"
    if text.startswith("no difference yet"):
        rest = text.removeprefix("no difference yet").strip()
        rest = rest.replace("(not enough deliveries)", "（配信数がまだ足りません）")
        return "まだ差は分かりません" + rest
    found = re.match(r"(\w+) is better than (\w+), (.*)", text)
    if found:
        return f"{found[1]} のほうが {found[2]} より良い（{found[3]}）"
    return text


@bp.app_template_filter("jst")
def jst(value: dt.datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M") if value else "—"


@bp.app_template_filter("action_label")
def action_label(action: str) -> str:
    return audit.ACTION_LABELS.get(action, action)


@bp.app_template_filter("detail")
def detail(value: dict | None) -> str:
    return "、".join(f"{DETAIL_LABELS.get(k, k)}: {v}" for k, v in (value or {}).items() if v not in (None, ""))


@bp.app_template_filter("known")
def known(value: Any) -> str:
    return {"not yet known": "まだ分かりません（LINEは20人未満を出しません）", "not measured": "測定していません"}.get(
        str(value), str(value))


def safe_next(target: str | None) -> str:
    """Only a path on this site (never another host) after login."""
    if target and target.startswith("/admin") and not urlparse(target).netloc:
        return target
    return url_for("console.overview")

