"""GET /r/<token>: count a campaign link click and redirect (302) to the survey.

Unknown or malformed tokens get a plain 404 page: an expected event (old or
mistyped links), so it is not logged as an error.
"""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, redirect

from bot.broadcast import campaigns

bp = Blueprint("links", __name__)
NOT_FOUND = ("<!doctype html><meta charset='utf-8'><title>ページが見つかりません</title>"
             "<p>このリンクは見つかりませんでした。/ This link was not found.</p>")


@bp.get("/r/<token>")
def follow(token: str):  # noqa: ANN201
    client = current_app.extensions["bot"].runtime.redis.client
    try:
        url = campaigns.record_click(client, token)
    except redis.RedisError:
        return "<p>しばらくしてからもう一度お試しください。</p>", 503
    if url is None:
        return NOT_FOUND, 404, {"Content-Type": "text/html; charset=utf-8"}
    return redirect(url, code=302)
