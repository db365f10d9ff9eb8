"""The signed webhook, driven like LINE drives it, answering through the fake LINE API."""

from __future__ import annotations

import logging

import pytest

from bot.core.postback import postback_data
from bot.runtime import build
from bot.web.app import create_app
from tests.line_helpers import (
    CONSOLE_KEY,
    OLD_SECRET,
    SECRET,
    TOKEN,
    body_of,
    event,
    sign,
    text_event,
    user,
)

ALICE, BOB, CAROL = user(1), user(2), user(3)


def make_app(settings, line, catalog, matcher, **over):
    s = settings.with_(line_channel_secret=SECRET, line_channel_secret_previous=OLD_SECRET,
                       line_channel_access_token=TOKEN, line_api_base_url=line.url, secret_key=CONSOLE_KEY, **over)
    return create_app(s, runtime=build(s, catalog=catalog, matcher=matcher), synchronous_sends=True)


@pytest.fixture
def post(client):
    def post(*events, body=None, signature=None, secret=SECRET):
        raw = body if body is not None else body_of(*events)
        headers = {"Content-Type": "application/json"}
        if signature is not False:
            headers["X-Line-Signature"] = signature or sign(raw, secret)
        return client.post("/callback", data=raw, headers=headers)

    return post


def texts(line, user_id):
    return [m.get("text", "") for _, m in line.fake.messages_for(user_id)]


def quick_data(message):
    return [i["action"].get("data") for i in (message.get("quickReply") or {}).get("items", [])]


# ------------------------------------------------------------- signature


def test_missing_or_wrong_signature_is_400_and_nothing_happens(post, line, redis_client):
    token = line.fake.issue_reply_token(ALICE)
    ev = text_event(ALICE, "夫に殴られる", token)
    assert post(ev, signature=False).status_code == 400
    assert post(ev, signature="bm90IGEgc2lnbmF0dXJl").status_code == 400
    assert post(ev, secret="some-other-secret").status_code == 400
    assert line.fake.deliveries == [] and redis_client.keys("*") == []


def test_signature_over_reserialised_json_fails(post, line):
    ev = text_event(ALICE, "詐欺かも😱", line.fake.issue_reply_token(ALICE))
    raw = body_of(ev)
    import json
    reserialised = json.dumps(json.loads(raw)).encode()  # ASCII-escaped: other bytes
    assert post(body=raw, signature=sign(reserialised)).status_code == 400
    assert post(body=raw).status_code == 200


def test_previous_secret_is_accepted_during_rotation(post, line):
    ev = text_event(ALICE, "こんにちは", line.fake.issue_reply_token(ALICE))
    assert post(ev, secret=OLD_SECRET).status_code == 200
    assert len(line.fake.messages_for(ALICE)) >= 1


def test_empty_events_is_a_connectivity_check(post, line):
    assert post().status_code == 200
    assert line.fake.deliveries == []


def test_malformed_json_is_400(post):
    assert post(body=b'{"events": [').status_code == 400
    assert post(body=b'{"destination": "x"}').status_code == 400
    assert post(body=b'{"events": {}}').status_code == 400


def test_body_over_one_mebibyte_is_413(client):
    raw = b'{"events": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/callback", data=raw, headers={"X-Line-Signature": sign(raw)})
    assert response.status_code == 413


# ------------------------------------------------------------- events


def test_text_message_is_answered_with_the_reply_token(post, line):
    token = line.fake.issue_reply_token(ALICE)
    assert post(text_event(ALICE, "息子を名乗る電話でお金を要求された", token)).status_code == 200
    (delivery,) = line.fake.delivered_to(ALICE)
    assert delivery.endpoint == "reply"
    assert "電話で『お金』詐欺" in delivery.messages[0]["text"]


def test_duplicate_and_redelivered_events_are_answered_once(post, line):
    token = line.fake.issue_reply_token(ALICE)
    ev = text_event(ALICE, "還付金の電話がきた", token, event_id="01HDUPLICATE0000000000000A")
    assert post(ev).status_code == 200
    again = dict(ev, deliveryContext={"isRedelivery": True})
    assert post(again).status_code == 200
    assert post(ev, ev).status_code == 200
    assert len(line.fake.delivered_to(ALICE)) == 1


def test_standby_records_nothing_and_sends_nothing(post, line, redis_client):
    ev = text_event(ALICE, "夫に殴られる", None, mode="standby")
    assert post(ev).status_code == 200
    assert line.fake.deliveries == [] and redis_client.keys("*") == []


@pytest.mark.parametrize("message", [
    {"type": "sticker", "packageId": "446", "stickerId": "1988", "stickerResourceType": "STATIC"},
    {"type": "image", "contentProvider": {"type": "line"}},
    {"type": "audio", "duration": 1000, "contentProvider": {"type": "line"}},
    {"type": "location", "latitude": 32.8, "longitude": 130.7, "address": "熊本市"},
])
def test_non_text_messages_get_a_pointer_to_the_menu(post, line, message):
    token = line.fake.issue_reply_token(ALICE)
    ev = event("message", ALICE, reply_token=token, message={"id": "77", "quoteToken": "q", **message})
    assert post(ev).status_code == 200
    (reply,) = [m for _, m in line.fake.messages_for(ALICE)]
    assert "メニュー" in reply["text"] and quick_data(reply)
    assert line.fake.requests.get("content", 0) == 0  # nothing downloaded


def test_follow_onboarding_language_area_topics(post, line, line_user, redis_client):
    alice = line_user(ALICE)
    welcome = alice.follow()[-1]
    assert "自動" in welcome["text"] and postback_data("lang", l="en") in quick_data(welcome)
    areas = alice.postback(postback_data("lang", l="en"))[-1]
    assert "area" in areas["text"] and postback_data("area", a="higashi") in quick_data(areas)
    topics = alice.postback(postback_data("area", a="higashi"))[-1]
    assert postback_data("topic", t="fraud") in quick_data(topics)
    alice.postback(postback_data("topic", t="fraud"))
    alice.postback(postback_data("topic", t="safety"))
    alice.postback(postback_data("topic", t="safety"))  # a second tap takes it back
    summary = alice.postback(postback_data("done"))[-1]
    assert "Higashi" in summary["text"] and "Scams" in summary["text"] and "Everyday" not in summary["text"]
    assert redis_client.smembers("sub:kumamoto:area:higashi") == {ALICE}
    assert redis_client.smembers("sub:kumamoto:topic:fraud") == {ALICE}
    assert redis_client.smembers("sub:kumamoto:topic:safety") == set()
    # replies now come in English
    post(text_event(ALICE, "夫に殴られる", line.fake.issue_reply_token(ALICE)))
    first_of_reply = line.fake.messages_for(ALICE)[-3][1]
    assert "You have done nothing wrong" in first_of_reply["text"]


def test_every_onboarding_step_is_skippable(post, line):
    post(event("follow", BOB, reply_token=line.fake.issue_reply_token(BOB), follow={"isUnblocked": True}))
    welcome = line.fake.messages_for(BOB)[-1][1]
    skip = quick_data(welcome)[-1]
    post(event("postback", BOB, reply_token=line.fake.issue_reply_token(BOB), postback={"data": skip}))
    areas = line.fake.messages_for(BOB)[-1][1]
    post(event("postback", BOB, reply_token=line.fake.issue_reply_token(BOB),
               postback={"data": quick_data(areas)[-1]}))
    topics = line.fake.messages_for(BOB)[-1][1]
    assert postback_data("done") in quick_data(topics)


def test_unfollow_deletes_subscriptions_and_state(post, line, redis_client):
    for data in (postback_data("area", a="chuo"), postback_data("topic", t="fraud")):
        post(event("postback", CAROL, reply_token=line.fake.issue_reply_token(CAROL), postback={"data": data}))
    post(text_event(CAROL, "夫に殴られる", line.fake.issue_reply_token(CAROL)))
    assert redis_client.keys("sub:*user*") and redis_client.keys("conv:*")
    assert post(event("unfollow", CAROL)).status_code == 200
    assert redis_client.keys("sub:*user*") == [] and redis_client.keys("conv:*") == []
    assert redis_client.keys("pref:*") == []
    assert CAROL not in redis_client.smembers("sub:kumamoto:topic:fraud")


@pytest.mark.parametrize("data", ["", "act=explode", "act=intent&id=../../etc", "a" * 300, "act=area&a=mars"])
def test_malformed_postback_gets_the_menu(post, line, data):
    post(event("postback", ALICE, reply_token=line.fake.issue_reply_token(ALICE), postback={"data": data}))
    reply = line.fake.messages_for(ALICE)[-1][1]
    assert len(quick_data(reply)) >= 4


def test_unsend_deletes_what_is_stored_about_the_message(post, line, redis_client):
    redis_client.set("msg:4242", "anything keyed by the message id")
    assert post(event("unsend", ALICE, unsend={"messageId": "4242"})).status_code == 200
    assert redis_client.keys("*4242*") == []


def test_several_users_in_one_post_and_a_broken_event_drops_nothing(post, line):
    broken = text_event(CAROL, "こんにちは", line.fake.issue_reply_token(CAROL))
    del broken["mode"]  # the SDK rejects this event; the others must still be answered
    events = [text_event(ALICE, "夫に殴られる", line.fake.issue_reply_token(ALICE)), broken,
              {"type": "somethingNew", "mode": "active", "timestamp": 1, "webhookEventId": "01HNEW",
               "deliveryContext": {"isRedelivery": False}},
              text_event(BOB, "今日の天気は？", line.fake.issue_reply_token(BOB))]
    assert post(*events).status_code == 200
    assert line.fake.delivered_to(ALICE) and line.fake.delivered_to(BOB)
    assert not line.fake.delivered_to(CAROL)


def test_expired_reply_token_falls_back_to_push_except_sensitive(post, line):
    line.fake.reply_token_ttl = 0.0  # every token has expired by the time we reply
    post(text_event(ALICE, "還付金があるって電話がきた", line.fake.issue_reply_token(ALICE)))
    (push,) = line.fake.delivered_to(ALICE)
    assert push.endpoint == "push" and push.retry_key
    post(text_event(BOB, "夫に殴られる", line.fake.issue_reply_token(BOB)))
    assert line.fake.delivered_to(BOB) == []  # S1: a sensitive answer is never pushed


def test_line_server_error_is_logged_and_the_webhook_still_answers_200(post, line, caplog):
    line.fake.fail_next("reply", 500)
    with caplog.at_level(logging.INFO):
        response = post(text_event(ALICE, "夫に殴られる", line.fake.issue_reply_token(ALICE)))
    assert response.status_code == 200
    assert any("status=500 request_id=" in r.getMessage() for r in caplog.records)
    assert not any("殴" in r.getMessage() for r in caplog.records)  # no resident text in logs


def test_redis_down_still_answers_and_health_is_degraded(settings, line, redis_client, catalog, shared_matcher):
    app = make_app(settings, line, catalog, shared_matcher, redis_url="redis://127.0.0.1:1/0")
    try:
        client = app.test_client()
        raw = body_of(text_event(ALICE, "夫に殴られる", line.fake.issue_reply_token(ALICE)))
        assert client.post("/callback", data=raw, headers={"X-Line-Signature": sign(raw)}).status_code == 200
        assert line.fake.delivered_to(ALICE)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json["status"] == "degraded"
    finally:
        app.extensions["bot"].close()


def test_health_is_200_with_content_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["redis"] == "ok"
    assert response.json["content"]["intents"] >= 12


def test_async_outbox_sends_after_the_response(settings, line, redis_client):
    s = settings.with_(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_base_url=line.url,
                       secret_key=CONSOLE_KEY)
    app = create_app(s)
    try:
        raw = body_of(text_event(ALICE, "夫に殴られる", line.fake.issue_reply_token(ALICE)))
        assert app.test_client().post("/callback", data=raw, headers={"X-Line-Signature": sign(raw)}).status_code == 200
        app.extensions["bot"].outbox.drain()
        assert line.fake.delivered_to(ALICE)
    finally:
        app.extensions["bot"].close()
