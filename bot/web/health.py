"""GET /healthz: 200 only with content loaded and Redis reachable."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    services = current_app.extensions["bot"]
    try:
        redis_ok = bool(services.runtime.redis.client.ping())
    except redis.RedisError:
        redis_ok = False
    body = {
        "status": "ok" if redis_ok else "degraded",
        "content": {"intents": len(services.runtime.catalog.intents), "city": services.settings.city},
        "redis": "ok" if redis_ok else "unreachable",
        "mode": "local" if services.settings.local_mode else "line",
    }
    return jsonify(body), 200 if redis_ok else 503
