"""POST /callback: LINE's webhook. Signature first, then every event on its own.

Nothing of the body is logged: it holds residents' words. Logs carry the
request id, event counts and timing only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Blueprint, current_app, jsonify, request

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)


@bp.post("/callback")
def callback():  # noqa: ANN201
    services = current_app.extensions["bot"]
    request_id = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    signature = request.headers.get("X-Line-Signature", "")
    body = request.get_data(cache=False)  # raw bytes, before anything parses them (413 above 1 MiB)
    if not signature or not services.verify(body, signature):
        log.warning("webhook %s: bad or missing signature", request_id)
        return jsonify({"message": "invalid signature"}), 400
    try:
        payload = json.loads(body)
        events = payload["events"]
        if not isinstance(events, list):
            raise TypeError("events is not a list")
    except (ValueError, KeyError, TypeError):
        log.warning("webhook %s: malformed body", request_id)
        return jsonify({"message": "malformed body"}), 400
    stats = services.events.handle_all(events)
    log.info("webhook %s: %d events (handled %d, duplicates %d, standby %d, ignored %d, failed %d) in %.1f ms",
             request_id, len(events), stats.handled, stats.duplicates, stats.standby, stats.ignored,
             stats.failed, (time.perf_counter() - started) * 1000)
    return jsonify({}), 200
