"""A fake LINE Messaging API that behaves like LINE, for tests, benchmarks and local mode.

LINE has no sandbox and forbids load tests, so everything that talks to LINE is
exercised against this server. It is strict on purpose (a test that passes only
against a lenient fake is a bug): 1-5 messages, text length in UTF-16 units,
13 quick replies, label and postback limits, single-use reply tokens that expire,
500 multicast recipients, `X-Line-Retry-Key` only on the send endpoints (400
elsewhere) and 409 with `x-line-accepted-request-id` on a repeated accepted key,
429 for the rate limit and for the monthly limit, and injected 5xx, slow and
lost responses (a 500 after the message was accepted).

Error bodies follow LINE: {"message": ..., "details": [{"message", "property"}]}.
Every response carries `X-Line-Request-Id`.

Inspection endpoints for tests and the simulator live under /fake/.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

from bot.line.fake_validation import _detail, _validate_action, validate_messages

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
USER_IDS = re.compile(r"U[0-9a-f]{32}(?:,U[0-9a-f]{32})*")  # a multicast's list, checked in one pass
UUID_HEX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNIT_NAME = re.compile(r"^[a-zA-Z0-9_]{1,30}$")
SEND_ENDPOINTS = {"push", "multicast", "narrowcast", "broadcast"}
MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."
RATE_LIMIT_MESSAGE = "The API rate limit has been exceeded. Try again later."
# LINE's per-endpoint limits (requests/second); configurable per fake.
DEFAULT_RATES = {"multicast": 200.0, "push": 2000.0, "reply": 2000.0}




def _hex_id(length: int = 32) -> str:
    """A request or message id. Not a secret: the random module, not os.urandom (which
    took a fifth of the fake's CPU at a thousand pushes a second)."""
    return f"{random.getrandbits(length * 4):0{length}x}"

class LineError(Exception):
    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []
        self.headers, self.extra = headers or {}, extra or {}


@dataclass
class Failure:
    endpoint: str
    status: int
    after_accept: bool = False  # a lost response: delivered, then 5xx
    delay: float = 0.0


@dataclass
class Delivery:
    request_id: str
    endpoint: str
    to: list[str]
    messages: list[dict[str, Any]]
    retry_key: str | None
    units: list[str]
    at: float


@dataclass
class FakeLine:
    """All state of the fake; thread-safe."""

    reply_token_ttl: float = 60.0
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    monthly_limit: int | None = None  # messages x recipients for push/multicast
    access_token: str | None = None  # when set, the bearer token must match
    # Random failures on the send endpoints (benchmarks): this share of requests fails,
    # split evenly between 429 (rate), 500, and 500 after acceptance (a lost response).
    failure_rate: float = 0.0
    seed: int = 7

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, tuple[str, float]] = {}  # reply token -> (user, issued)
        self.used_tokens: set[str] = set()
        self.accepted_keys: dict[str, tuple[str, float, list[dict[str, Any]]]] = {}
        self.inflight_keys: set[str] = set()
        self.deliveries: list[Delivery] = []
        # per user: (sequence number of the first message, the messages) of each delivery
        self.by_user: dict[str, list[tuple[int, list[dict[str, Any]]]]] = defaultdict(list)
        self.failures: deque[Failure] = deque()
        self.window: dict[str, deque[float]] = defaultdict(deque)
        self.usage = 0
        self.requests: dict[str, int] = defaultdict(int)
        self.rich_menus: dict[str, dict[str, Any]] = {}
        self.rich_menu_images: dict[str, bytes] = {}
        self.default_rich_menu: str | None = None
        self.seq = 0
        self.random = random.Random(self.seed)
        self.unit_stats: dict[str, dict[str, int]] = {}  # set by tests: what LINE "measured"

    # ---------------------------------------------------------- test controls

    def issue_reply_token(self, user_id: str) -> str:
        token = _hex_id()
        with self.lock:
            self.tokens[token] = (user_id, time.monotonic())
        return token

    def fail_next(self, endpoint: str, status: int = 500, count: int = 1, *,
                  after_accept: bool = False, delay: float = 0.0) -> None:
        with self.lock:
            for _ in range(count):
                self.failures.append(Failure(endpoint, status, after_accept, delay))

    def messages_for(self, user_id: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        with self.lock:
            return [(first + k, m) for first, messages in self.by_user.get(user_id, [])
                    for k, m in enumerate(messages) if first + k > after]

    def delivered_to(self, user_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if user_id in d.to]

    def reset(self) -> None:
        with self.lock:
            self.__post_init__()

    # ---------------------------------------------------------- checks

    def _take_failure(self, endpoint: str) -> Failure | None:
        with self.lock:
            for f in list(self.failures):
                if f.endpoint in (endpoint, "*"):
                    self.failures.remove(f)
                    return f
            if self.failure_rate and endpoint in SEND_ENDPOINTS and self.random.random() < self.failure_rate:
                kind = self.random.randrange(3)
                return Failure(endpoint, 429 if kind == 0 else 500, after_accept=kind == 2)
        return None

    def recipient_summary(self) -> dict[str, int]:
        """How many users got messages, and how many got more than one delivery."""
        with self.lock:
            per_user: dict[str, int] = defaultdict(int)
            for d in self.deliveries:
                for user in d.to:
                    per_user[user] += 1
        return {"users": len(per_user), "duplicates": sum(1 for n in per_user.values() if n > 1),
                "deliveries": sum(per_user.values())}

    def _rate(self, endpoint: str) -> None:
        limit = self.rates.get(endpoint)
        if not limit:
            return
        now = time.monotonic()
        with self.lock:
            window = self.window[endpoint]
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= limit:
                raise LineError(429, RATE_LIMIT_MESSAGE)
            window.append(now)

    def _quota(self, count: int) -> None:
        with self.lock:
            if self.monthly_limit is not None and self.usage + count > self.monthly_limit:
                raise LineError(429, MONTHLY_LIMIT_MESSAGE)
            self.usage += count

    def _record(self, endpoint: str, to: list[str], messages: list[dict[str, Any]],
                retry_key: str | None, units: list[str]) -> Delivery:
        delivery = Delivery(_hex_id(), endpoint, to, messages, retry_key, units, time.time())
        with self.lock:
            self.deliveries.append(delivery)
            # One shared entry per delivery: a 500-recipient multicast costs 500 appends, not more.
            entry = (self.seq + 1, messages)
            self.seq += len(messages)
            by_user = self.by_user
            for user in to:
                by_user[user].append(entry)
            if retry_key:
                self.accepted_keys[retry_key] = (delivery.request_id, time.monotonic(), messages)
        return delivery


# ---------------------------------------------------------------- the server


def create_fake_line_app(fake: FakeLine | None = None) -> Flask:
    fake = fake or FakeLine()
    app = Flask("fakeline")
    app.config["FAKE_LINE"] = fake

    def error_response(exc: LineError, request_id: str) -> Response:
        body = {"message": exc.message, **exc.extra}
        if exc.details:
            body["details"] = exc.details
        resp = jsonify(body)
        resp.status_code = exc.status
        resp.headers["X-Line-Request-Id"] = request_id
        for k, v in exc.headers.items():
            resp.headers[k] = v
        return resp

    def api(endpoint: str, handler):  # noqa: ANN001
        def view() -> Response:
            request_id = _hex_id()
            with fake.lock:
                fake.requests[endpoint] += 1
            try:
                auth = request.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or len(auth) <= 7 or (
                        fake.access_token and auth[7:] != fake.access_token):
                    raise LineError(401, "Authentication failed due to the following reason: invalid token.")
                retry_key = request.headers.get("X-Line-Retry-Key")
                if retry_key is not None and endpoint not in SEND_ENDPOINTS:
                    raise LineError(400, "The retry key is not supported for this endpoint.")
                if retry_key is not None and not UUID_HEX.match(retry_key):
                    raise LineError(400, "The retry key must be a UUID in hexadecimal format.")
                fake._rate(endpoint)
                failure = fake._take_failure(endpoint)
                if failure and failure.delay:
                    time.sleep(failure.delay)
                if failure and not failure.after_accept:
                    message = (RATE_LIMIT_MESSAGE if failure.status == 429
                               else "An error occurred in the backend server.")
                    raise LineError(failure.status, message)
                if retry_key:
                    with fake.lock:
                        accepted = fake.accepted_keys.get(retry_key)
                        if accepted and time.monotonic() - accepted[1] < 24 * 3600:
                            raise LineError(409, "The retry key is already accepted",
                                            headers={"X-Line-Accepted-Request-Id": accepted[0]},
                                            extra={"sentMessages": [{"id": _hex_id(18)}
                                                                    for _ in accepted[2]]})
                        if retry_key in fake.inflight_keys:
                            raise LineError(409, "The retry key is already accepted")
                        fake.inflight_keys.add(retry_key)
                try:
                    body = request.get_json(silent=True)
                    if body is None and request.method == "POST" and request.data:
                        raise LineError(400, "The request body has 1 error(s)",
                                        [_detail("", "Invalid JSON")])
                    status, payload, delivery = handler(body if body is not None else {}, retry_key)
                finally:
                    if retry_key:
                        with fake.lock:
                            fake.inflight_keys.discard(retry_key)
                if failure and failure.after_accept:
                    raise LineError(failure.status, "An error occurred in the backend server.")
                resp = jsonify(payload) if payload is not None else Response(status=status)
                resp.status_code = status
                resp.headers["X-Line-Request-Id"] = delivery.request_id if delivery else request_id
                return resp
            except LineError as exc:
                return error_response(exc, request_id)

        view.__name__ = f"api_{endpoint}"
        return view

    def require(body: dict[str, Any], key: str) -> Any:
        if key not in body:
            raise LineError(400, "The request body has 1 error(s)", [_detail(key, "Must be specified")])
        return body[key]

    def check_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
        messages = require(body, "messages")
        details = validate_messages(messages)
        if details:
            raise LineError(400, f"The request body has {len(details)} error(s)", details)
        return messages

    def units_of(body: dict[str, Any], max_items: int | None) -> list[str]:
        units = body.get("customAggregationUnits") or []
        if not isinstance(units, list) or (max_items and len(units) > max_items) or not all(
                isinstance(u, str) and UNIT_NAME.match(u) for u in units):
            raise LineError(400, "The request body has 1 error(s)",
                            [_detail("customAggregationUnits", "Invalid aggregation unit")])
        return units

    def reply(body: dict[str, Any], retry_key: str | None):  # noqa: ANN202
        token = require(body, "replyToken")
        messages = check_messages(body)
        with fake.lock:
            entry = fake.tokens.get(token)
            valid = (entry is not None and token not in fake.used_tokens
                     and time.monotonic() - entry[1] <= fake.reply_token_ttl)
            if valid:
                fake.used_tokens.add(token)
        if entry is None or not valid:
            raise LineError(400, "Invalid reply token")
        delivery = fake._record("reply", [entry[0]], messages, None, [])
        return 200, {"sentMessages": [{"id": _hex_id(18), "quoteToken": _hex_id()}
                                      for _ in messages]}, delivery

    def push(body: dict[str, Any], retry_key: str | None):  # noqa: ANN202
        to = require(body, "to")
        if not isinstance(to, str) or not USER_ID.match(to):
            raise LineError(400, "The request body has 1 error(s)", [_detail("to", "Invalid user ID")])
        messages = check_messages(body)
        units = units_of(body, None)
        fake._quota(len(messages))
        delivery = fake._record("push", [to], messages, retry_key, units)
        return 200, {"sentMessages": [{"id": _hex_id(18), "quoteToken": _hex_id()}
                                      for _ in messages]}, delivery

    def multicast(body: dict[str, Any], retry_key: str | None):  # noqa: ANN202
        to = require(body, "to")
        if not isinstance(to, list) or not 1 <= len(to) <= 500:
            raise LineError(400, "The request body has 1 error(s)", [_detail("to", "Size must be between 1 and 500")])
        if not all(isinstance(u, str) for u in to) or not USER_IDS.fullmatch(",".join(to)):
            raise LineError(400, "The request body has 1 error(s)", [_detail("to", "Invalid user ID")])
        messages = check_messages(body)
        units = units_of(body, 1)
        fake._quota(len(messages) * len(to))
        delivery = fake._record("multicast", list(to), messages, retry_key, units)
        return 200, {}, delivery

    def loading(body: dict[str, Any], retry_key: str | None):  # noqa: ANN202
        seconds = body.get("loadingSeconds", 20)
        if not USER_ID.match(str(body.get("chatId", ""))) or not (
                isinstance(seconds, int) and 5 <= seconds <= 60 and seconds % 5 == 0):
            raise LineError(400, "The request body has 1 error(s)", [_detail("loadingSeconds", "Invalid value")])
        return 202, {}, None

    def richmenu_create(body: dict[str, Any], retry_key: str | None):  # noqa: ANN202
        areas = body.get("areas")
        size = body.get("size") or {}
        chat_bar = body.get("chatBarText")
        details = []
        if not isinstance(areas, list) or not 1 <= len(areas) <= 20:
            details.append(_detail("areas", "Size must be between 1 and 20"))
        if not isinstance(chat_bar, str) or not 1 <= len(chat_bar) <= 14:
            details.append(_detail("chatBarText", "Length must be between 1 and 14"))
        if size.get("width") != 2500 or size.get("height") not in (843, 1686):
            details.append(_detail("size", "Invalid size"))
        for n, area in enumerate(areas or []):
            details += _validate_action(area.get("action"), f"areas[{n}].action")
        if details:
            raise LineError(400, f"The request body has {len(details)} error(s)", details)
        menu_id = "richmenu-" + _hex_id()
        with fake.lock:
            fake.rich_menus[menu_id] = body
        return 200, {"richMenuId": menu_id}, None

    for rule, endpoint, handler in [
        ("/v2/bot/message/reply", "reply", reply),
        ("/v2/bot/message/push", "push", push),
        ("/v2/bot/message/multicast", "multicast", multicast),
        ("/v2/bot/chat/loading/start", "loading", loading),
        ("/v2/bot/richmenu", "richmenu", richmenu_create),
    ]:
        app.add_url_rule(rule, view_func=api(endpoint, handler), methods=["POST"])

    @app.get("/v2/bot/insight/message/event/aggregation")
    def unit_statistics() -> Response:
        """Statistics per aggregation unit; like LINE, values under 20 are withheld (null)."""
        request_id = _hex_id()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (fake.access_token and auth[7:] != fake.access_token):
            return error_response(LineError(401, "Authentication failed"), request_id)
        unit, start, end = (request.args.get(k, "") for k in ("customAggregationUnit", "from", "to"))
        if not UNIT_NAME.match(unit) or not re.match(r"^\d{8}$", start) or not re.match(r"^\d{8}$", end):
            return error_response(LineError(400, "The request has invalid parameters"), request_id)
        with fake.lock:
            fake.requests["insight"] += 1
            measured = dict(fake.unit_stats.get(unit, {}))
        shown = lambda k: measured[k] if measured.get(k, 0) >= 20 else None  # noqa: E731
        resp = jsonify({"overview": {"uniqueImpression": shown("uniqueImpression"),
                                     "uniqueClick": shown("uniqueClick"), "uniqueMediaPlayed": None,
                                     "uniqueMediaPlayed100Percent": None},
                        "messages": [], "clicks": []})
        resp.headers["X-Line-Request-Id"] = request_id
        return resp

    @app.post("/v2/bot/richmenu/<menu_id>/content")
    def richmenu_image(menu_id: str) -> Response:
        if menu_id not in fake.rich_menus:
            return error_response(LineError(404, "Not found"), _hex_id())
        if request.content_type not in ("image/png", "image/jpeg") or not request.data:
            return error_response(LineError(415, "Unsupported media type"), _hex_id())
        with fake.lock:
            fake.rich_menu_images[menu_id] = request.data
        return jsonify({})

    @app.post("/v2/bot/user/all/richmenu/<menu_id>")
    def richmenu_default(menu_id: str) -> Response:
        if menu_id not in fake.rich_menus or menu_id not in fake.rich_menu_images:
            return error_response(LineError(400, "must upload richmenu image before applying it to user"),
                                  _hex_id())
        fake.default_rich_menu = menu_id
        return jsonify({})

    # ------------------------------------------------------ inspection (not LINE's)

    @app.post("/fake/reply-token")
    def fake_token() -> Response:
        data = request.get_json(silent=True) or {}
        user = str(data.get("userId", ""))
        count = min(int(data.get("count", 1)), 10_000)
        tokens = [fake.issue_reply_token(user) for _ in range(count)]
        return jsonify({"replyToken": tokens[0], "replyTokens": tokens})

    @app.post("/fake/config")
    def fake_config() -> Response:
        """Tune the fake at run time: rates, monthly limit, token lifetime, injected failures."""
        data = request.get_json(silent=True) or {}
        with fake.lock:
            fake.rates.update({k: float(v) for k, v in (data.get("rates") or {}).items()})
            if "monthlyLimit" in data:
                fake.monthly_limit = data["monthlyLimit"]
            if "replyTokenTtl" in data:
                fake.reply_token_ttl = float(data["replyTokenTtl"])
            if "failureRate" in data:
                fake.failure_rate = float(data["failureRate"])
        for f in data.get("failures") or []:
            fake.fail_next(f["endpoint"], int(f.get("status", 500)), int(f.get("count", 1)),
                           after_accept=bool(f.get("afterAccept")), delay=float(f.get("delay", 0)))
        return jsonify({})

    @app.get("/fake/messages")
    def fake_messages() -> Response:
        user = request.args.get("to", "")
        after = request.args.get("after", "0")
        rows = fake.messages_for(user, int(after) if after.isdigit() else 0)
        return jsonify({"messages": [{"seq": n, "message": m} for n, m in rows]})

    @app.get("/fake/recipients")
    def fake_recipients() -> Response:
        return jsonify(fake.recipient_summary())

    @app.get("/fake/stats")
    def fake_stats() -> Response:
        with fake.lock:
            return jsonify({"requests": dict(fake.requests), "deliveries": len(fake.deliveries),
                            "usage": fake.usage, "defaultRichMenu": fake.default_rich_menu})

    return app
