"""The fake LINE API is as strict as LINE: limits, 400 bodies, tokens, retry keys, 409, 429.

Raw HTTP where line-bot-sdk would refuse the request client-side; the SDK
(through bot.line.api) where it would send it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from urllib.error import HTTPError

import pytest
from linebot.v3.messaging import TextMessage

from bot.line.api import LineApi
from bot.line.fake import MONTHLY_LIMIT_MESSAGE, FakeLine
from bot.settings import Settings
from tests.line_helpers import TOKEN, user

ALICE = user(10)


@pytest.fixture
def api(line):
    client = LineApi(Settings(line_channel_access_token=TOKEN, line_api_base_url=line.url), backoff=0.01)
    yield client
    client.close()


def call(line, path, body, headers=None, token=TOKEN):
    req = urllib.request.Request(line.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def text(n=1, length=5):
    return [{"type": "text", "text": "あ" * length} for _ in range(n)]


def test_every_response_has_a_request_id(line):
    status, _, headers = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()})
    assert status == 200 and headers.get("X-Line-Request-Id")
    status, _, headers = call(line, "/v2/bot/message/push", {"to": "nobody", "messages": text()})
    assert status == 400 and headers.get("X-Line-Request-Id")


def test_bad_token_is_401(line):
    status, body, _ = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()}, token="wrong")
    assert status == 401 and "message" in body


@pytest.mark.parametrize("messages, prop", [
    (text(0), "messages"),
    (text(6), "messages"),
    ([{"type": "text", "text": "a" * 5001}], "messages[0].text"),
    ([{"type": "text", "text": "😀" * 2501}], "messages[0].text"),  # 5,002 UTF-16 units
    ([{"type": "text", "text": "x", "quickReply": {"items": [
        {"type": "action", "action": {"type": "postback", "label": "l", "data": "d"}}] * 14}}],
     "messages[0].quickReply.items"),
    ([{"type": "text", "text": "x", "quickReply": {"items": [
        {"type": "action", "action": {"type": "postback", "label": "あ" * 21, "data": "d"}}]}}],
     "messages[0].quickReply.items[0].action.label"),
    ([{"type": "text", "text": "x", "quickReply": {"items": [
        {"type": "action", "action": {"type": "postback", "label": "l", "data": "d" * 301}}]}}],
     "messages[0].quickReply.items[0].action.data"),
    ([{"type": "flex", "altText": "a" * 1501, "contents": {"type": "bubble"}}], "messages[0].altText"),
    ([{"type": "flex", "altText": "a", "contents": {"type": "carousel", "contents": [{"type": "bubble"}] * 13}}],
     "messages[0].contents.contents"),
])
def test_message_limits_give_400_with_details(line, messages, prop):
    status, body, _ = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": messages})
    assert status == 400
    assert any(d["property"] == prop for d in body["details"]), body
    assert line.fake.deliveries == []


def test_text_at_exactly_5000_utf16_units_is_accepted(line):
    status, _, _ = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": [{"type": "text", "text": "😀" * 2500}]})
    assert status == 200


def test_reply_tokens_are_single_use_and_expire(line, api):
    token = line.fake.issue_reply_token(ALICE)
    assert api.reply(token, [TextMessage(text="一度目")]).ok
    again = api.reply(token, [TextMessage(text="二度目")])
    assert (again.ok, again.status, again.invalid_reply_token) == (False, 400, True)
    line.fake.reply_token_ttl = 0.0
    late = api.reply(line.fake.issue_reply_token(ALICE), [TextMessage(text="遅い")])
    assert late.invalid_reply_token
    assert api.reply("never-issued", [TextMessage(text="?")]).status == 400


def test_retry_key_on_reply_is_rejected(line):
    token = line.fake.issue_reply_token(ALICE)
    status, body, _ = call(line, "/v2/bot/message/reply", {"replyToken": token, "messages": text()},
                           headers={"X-Line-Retry-Key": str(uuid.uuid4())})
    assert status == 400 and "retry key" in body["message"]


def test_repeated_accepted_retry_key_is_409_with_the_accepted_request_id(line):
    key = str(uuid.uuid4())
    status, _, first = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()}, {"X-Line-Retry-Key": key})
    assert status == 200
    status, body, headers = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()},
                                 {"X-Line-Retry-Key": key})
    assert status == 409 and headers["X-Line-Accepted-Request-Id"] == first["X-Line-Request-Id"]
    assert "sentMessages" in body
    assert len(line.fake.delivered_to(ALICE)) == 1


def test_malformed_retry_key_is_400(line):
    status, _, _ = call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()}, {"X-Line-Retry-Key": "nope"})
    assert status == 400


def test_multicast_takes_at_most_500_recipients_and_one_unit(line):
    users = [user(n) for n in range(1000, 1501)]
    status, body, _ = call(line, "/v2/bot/message/multicast", {"to": users, "messages": text()})
    assert status == 400 and body["details"][0]["property"] == "to"
    status, _, _ = call(line, "/v2/bot/message/multicast", {"to": users[:500], "messages": text()})
    assert status == 200
    status, _, _ = call(line, "/v2/bot/message/multicast",
                        {"to": users[:2], "messages": text(), "customAggregationUnits": ["a", "b"]})
    assert status == 400


def test_rate_limit_gives_429(line):
    line.fake.rates["push"] = 3
    statuses = [call(line, "/v2/bot/message/push", {"to": ALICE, "messages": text()})[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


def test_monthly_limit_gives_429_with_its_message_and_is_not_retried(line, api):
    line.fake.monthly_limit = 1
    assert api.push(ALICE, [TextMessage(text="一通目")]).ok
    result = api.push(ALICE, [TextMessage(text="二通目")])
    assert result.status == 429 and result.monthly_limit and result.attempts == 1
    assert result.error == MONTHLY_LIMIT_MESSAGE


def test_push_retries_5xx_with_the_same_key(line, api):
    line.fake.fail_next("push", 500, count=2)
    result = api.push(ALICE, [TextMessage(text="届く")])
    assert result.ok and result.attempts == 3
    keys = {d.retry_key for d in line.fake.delivered_to(ALICE)}
    assert len(line.fake.delivered_to(ALICE)) == 1 and len(keys) == 1


def test_lost_response_then_retry_gets_409_and_counts_as_delivered_once(line, api):
    line.fake.fail_next("push", 500, after_accept=True)
    result = api.push(ALICE, [TextMessage(text="一度だけ")])
    assert result.ok and result.status == 409 and result.attempts == 2
    assert len(line.fake.delivered_to(ALICE)) == 1


def test_4xx_other_than_429_is_not_retried(line, api):
    result = api.push("U-not-a-user", [TextMessage(text="x")])
    assert result.status == 400 and result.attempts == 1


def test_connection_refused_is_reported_not_raised():
    dead = LineApi(Settings(line_channel_access_token=TOKEN, line_api_base_url="http://127.0.0.1:1"),
                   retries=1, backoff=0.01)
    result = dead.push(ALICE, [TextMessage(text="x")])
    assert (result.ok, result.status) == (False, 0)


def test_fake_state_is_per_instance():
    a, b = FakeLine(), FakeLine()
    a.issue_reply_token(ALICE)
    assert a.tokens and not b.tokens


@pytest.mark.parametrize("units", [[], ["campaign_a"]])
def test_multicast_wire_form_equals_the_sdk_form(units):
    """WireMulticast skips pydantic's walk over 500 ids; its JSON must be the SDK's own."""
    from linebot.v3.messaging import MulticastRequest

    from bot.line.api import WireMulticast

    fields = {"to": [user(n) for n in range(500)], "messages": [TextMessage(text="注意")],
              "custom_aggregation_units": units or None}
    assert WireMulticast.construct(**fields).to_dict() == MulticastRequest.construct(**fields).to_dict()


def test_multicast_through_the_sdk_reaches_every_recipient(line, api):
    recipients = [user(n) for n in range(500)]
    result = api.multicast(recipients, [TextMessage(text="注意")], str(uuid.uuid4()))
    assert result.ok, result
    assert line.fake.recipient_summary() == {"users": 500, "duplicates": 0, "deliveries": 500}
    assert all(line.fake.messages_for(r) for r in (recipients[0], recipients[-1]))
