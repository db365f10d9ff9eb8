"""What keeps the staff console safe: the session key, cookies that expire, CSRF tokens on
every form (Flask-WTF), the login throttle (Flask-Limiter on the bot's Redis), and security
headers on every response."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect

from bot.settings import Settings

LOGIN_LIMIT = "5 per minute;30 per hour"
LOGIN_VIEW = "console.login"


class StartupError(RuntimeError):
    """A setting the web app cannot start without; the message is the one line to print."""


def console_secret(settings: Settings) -> str:
    """The key that signs sessions and CSRF tokens: BOT_SECRET_KEY; in local mode one is made
    once and kept under BOT_DATA_DIR (so sessions survive a restart)."""
    if settings.secret_key:
        return settings.secret_key.get_secret_value()
    if not settings.local_mode:
        raise StartupError("BOT_SECRET_KEY: required with a LINE channel (32 characters or more; it signs the "
                           "staff console's sessions)")
    path = settings.data_dir / "console-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def configure_security(app: Flask, settings: Settings, key: str, redis_url: str) -> CSRFProtect:
    """Call after the blueprints are registered. Each app gets its own CSRFProtect and Limiter
    (the throttle's store is the bot's Redis, shared by gunicorn workers); returns the former
    so the app can exempt the surfaces that have no browser session."""
    https = bool(settings.public_url and settings.public_url.startswith("https://"))
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="kurashi_staff",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # the session's own expiry bounds the token
        # limits names a Redis socket redis+unix:// (the embedded Redis listens on one)
        RATELIMIT_STORAGE_URI="redis+" + redis_url if redis_url.startswith("unix://") else redis_url,
        RATELIMIT_KEY_PREFIX="throttle",
    )
    csrf = CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, default_limits=[], headers_enabled=True)
    # throttled per address: a wrong password five times a minute waits, whoever it names
    login = app.view_functions[LOGIN_VIEW]
    app.view_functions[LOGIN_VIEW] = limiter.limit(LOGIN_LIMIT, methods=["POST"])(login)  # type: ignore[assignment]

    @app.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError) -> ResponseReturnValue:
        message = ("このページの有効期限が切れたか、正しくない送信です。ページを読み込み直して、"
                   "もう一度操作してください。")
        if request.path.startswith("/admin"):
            return render_template("admin/error.html", title="送信できませんでした", message=message), 400
        return jsonify({"message": message}), 400

    @app.errorhandler(413)
    def too_large(exc: Exception) -> ResponseReturnValue:
        message = "送られた内容が大きすぎます（1MBまで）。"
        if request.path.startswith("/admin"):
            return render_template("admin/error.html", title="大きすぎます", message=message), 413
        return jsonify({"message": message}), 413

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/admin"):
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Cache-Control"] = "no-store"
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
            if https:
                response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    return csrf
