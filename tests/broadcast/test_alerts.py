"""Alerts end to end: subscriptions, targeting, the daily cap, delivery against the fake
LINE API with 429s, 500s and lost responses, the monthly limit, a worker killed with
kill -9 and restarted, the staff API and the CLI."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError
from rq import Queue
from rq.registry import ScheduledJobRegistry

from bot.broadcast import actions, alerts, queue
from bot.broadcast import status as delivery_status
from bot.broadcast.alert_delivery import AlertDelivery
from bot.broadcast.subscriptions import Subscriptions
from bot.cli import main
from bot.core.postback import postback_data
from bot.line.api import LineApi
from bot.line.ratelimit import RateLimiter
from bot.runtime import build
from bot.settings import REPO_ROOT
from bot.web.app import create_app
from tests.line_helpers import (
    SECRET,
    TOKEN,
    residents_kept,
    run_with_line,
    user,
)


def fraud_alert(**over):
    data = {"topic": "fraud", "areas": ["chuo"], "title": "「警察官」を名乗る電話に注意",
            "body": "警察官を名乗り「口座が犯罪に使われている」と言って、キャッシュカードを求める電話。",
            "where_when": "12月2日から中央区で同じような電話が続いています。",
            "countermeasures": ["知らない番号には出ない", "いったん切って自分で調べた番号にかけ直す", "家族に相談する"]}
    data.update(over)
    return data


def deliver(client, settings, alert_id):
    return run_with_line(AlertDelivery, client, settings, alert_id)


def received(line):
    """user id -> number of alert messages delivered by multicast."""
    counts = collections.Counter()
    for d in line.fake.deliveries:
        if d.endpoint == "multicast":
            counts.update(d.to)
    return counts


def test_targeting_topic_by_area_with_whole_city_subscribers(redis_client, alert_settings, city, subs, line):
    chuo_fraud, higashi_fraud, whole_fraud, chuo_suspicious = user(1), user(2), user(3), user(4)
    subs.set_areas(chuo_fraud, ["chuo"]); subs.set_topics(chuo_fraud, ["fraud"])  # noqa: E702
    subs.set_areas(higashi_fraud, ["higashi"]); subs.set_topics(higashi_fraud, ["fraud", "safety"])  # noqa: E702
    subs.set_areas(whole_fraud, ["all"]); subs.set_topics(whole_fraud, ["fraud"])  # noqa: E702
    subs.set_areas(chuo_suspicious, ["chuo"]); subs.set_topics(chuo_suspicious, ["suspicious"])  # noqa: E702

    alert_id = alerts.create_alert(redis_client, city, fraud_alert())
    assert deliver(redis_client, alert_settings, alert_id) == "done"
    assert set(received(line)) == {chuo_fraud, whole_fraud}

    whole_city = alerts.create_alert(redis_client, city, fraud_alert(areas=["all"], title="市内全域のお知らせ"))
    deliver(redis_client, alert_settings, whole_city)
    assert received(line) == {chuo_fraud: 2, whole_fraud: 2, higashi_fraud: 1}
    status = delivery_status.alert_status(redis_client, whole_city, 150)
    assert (status.state, status.recipients, status.sent, status.failed) == ("done", 3, 3, 0)


def test_the_alert_card_follows_the_police_pattern(redis_client, alert_settings, city, subs, line):
    subs.set_areas(user(5), ["chuo"]); subs.set_topics(user(5), ["fraud"])  # noqa: E702
    deliver(redis_client, alert_settings, alerts.create_alert(redis_client, city, fraud_alert()))
    (message,) = line.fake.deliveries[0].messages
    assert message["altText"] == "「警察官」を名乗る電話に注意"
    text = json.dumps(message, ensure_ascii=False)
    for part in ("電話で『お金』詐欺", "手口：", "いつ・どこで：", "① 知らない番号には出ない", "③ 家族に相談する", "身近な方にも伝えて"):
        assert part in text
    button = message["contents"]["footer"]["contents"][0]["action"]
    assert button["uri"] == "tel:0963812567"  # the city's desk for fraud: the police fraud hotline


def test_subscribing_by_chat_then_receiving(redis_client, alert_settings, city, line, line_user):
    resident = user(77)
    for data in (postback_data("area", a="kita"), postback_data("topic", t="suspicious")):
        line_user(resident).postback(data)
    alert_id = alerts.create_alert(redis_client, city, fraud_alert(topic="suspicious", areas=["kita"],
                                                                     title="下校中の声かけに注意"))
    deliver(redis_client, alert_settings, alert_id)
    assert received(line) == {resident: 1}


def test_residents_who_set_up_alerts_in_english_get_the_english_version(
        redis_client, alert_settings, city, line, line_user):
    english, japanese = user(81), user(82)
    taps = {english: [postback_data("lang", l="en"), postback_data("area", a="chuo"),
                      postback_data("topic", t="fraud")],
            japanese: [postback_data("lang", l="ja"), postback_data("area", a="chuo"),
                       postback_data("topic", t="fraud")]}
    for resident, datas in taps.items():
        for data in datas:
            line_user(resident).postback(data)

    def cards():
        out = {}
        for d in line.fake.deliveries:
            if d.endpoint == "multicast":
                out.update({r: d.messages[0] for r in d.to})
        line.fake.deliveries.clear()
        return out

    both = fraud_alert(send_now=True, en={
        "title": "Beware of calls from fake police officers",
        "body": "A caller says your bank account was used in a crime and asks for cash or your card.",
        "countermeasures": ["Do not answer unknown numbers", "Hang up and call a number you know"]})
    status = actions.send_alert(redis_client, alert_settings.redis_url, city, both, 150)
    assert deliver(redis_client, alert_settings, status.id) == "done"
    got = cards()
    assert got[english]["altText"] == "Beware of calls from fake police officers"
    card = json.dumps(got[english], ensure_ascii=False)
    assert "How it works: A caller says" in card and "① Do not answer unknown numbers" in card
    assert got[english]["contents"]["footer"]["contents"][0]["action"]["uri"] == "tel:0963812567"
    assert got[japanese]["altText"] == "「警察官」を名乗る電話に注意" and "手口：" in json.dumps(got[japanese],
                                                                                     ensure_ascii=False)
    final = delivery_status.alert_status(redis_client, status.id, 150)
    assert (final.recipients, final.sent, final.chunks_total) == (2, 2, 2)  # one chunk per language

    # Without an English version everyone gets the Japanese card; unfollow forgets the language.
    japanese_only = alerts.create_alert(redis_client, city, fraud_alert(send_now=True, title="お知らせ"))
    deliver(redis_client, alert_settings, japanese_only)
    assert {r: c["altText"] for r, c in cards().items()} == {english: "お知らせ", japanese: "お知らせ"}
    Subscriptions(redis_client, "kumamoto").remove_user(english)
    assert not redis_client.sismember("sub:kumamoto:lang:en", english)


def test_asking_about_alerts_by_text_shows_a_subscriber_their_choice(line_user):
    resident = line_user(user(78))
    before = json.dumps(resident.text("設定を見る")[-1], ensure_ascii=False)
    assert "防犯のお知らせを受け取れます" in before  # not subscribed yet: what alerts are
    resident.postback(postback_data("area", a="higashi"))
    resident.postback(postback_data("topic", t="missing"))
    for text in ("設定を見る", "今どの情報を受け取る設定になってる？"):
        after = json.dumps(resident.text(text)[-1], ensure_ascii=False)
        assert "東区" in after and "行方不明" in after and "act=areas" in after, after


def test_daily_cap_holds_back_the_fourth_alert_but_never_an_emergency(redis_client, alert_settings, city, subs, line):
    resident = user(9)
    subs.set_areas(resident, ["chuo"]); subs.set_topics(resident, ["fraud", "emergency"])  # noqa: E702
    states = []
    for n in range(4):
        alert_id = alerts.create_alert(redis_client, city, fraud_alert(title=f"お知らせ {n}"))
        deliver(redis_client, alert_settings, alert_id)
        states.append(delivery_status.alert_status(redis_client, alert_id, 150))
    assert received(line)[resident] == 3
    assert (states[3].sent, states[3].capped) == (0, 1)
    urgent = alerts.create_alert(redis_client, city, fraud_alert(topic="emergency", title="緊急治安情報"))
    deliver(redis_client, alert_settings, urgent)
    assert received(line)[resident] == 4


def test_delivery_survives_429_500_and_lost_responses_exactly_once(redis_client, alert_settings, city, subs, line):
    people = [user(1000 + n) for n in range(1234)]  # 3 chunks
    for p in people:
        subs.set_areas(p, ["higashi"])
        subs.set_topics(p, ["safety"])
    line.fake.fail_next("multicast", 429, count=2)
    line.fake.fail_next("multicast", 500, count=2)
    line.fake.fail_next("multicast", 500, after_accept=True)  # accepted, then the response is lost
    alert_id = alerts.create_alert(redis_client, city, fraud_alert(topic="safety", areas=["higashi"]))
    assert deliver(redis_client, alert_settings, alert_id) == "done"
    counts = received(line)
    assert set(counts) == set(people) and set(counts.values()) == {1}
    status = delivery_status.alert_status(redis_client, alert_id, 150)
    assert (status.recipients, status.sent, status.failed, status.chunks_total, status.chunks_done) == (
        1234, 1234, 0, 3, 3)
    keys = [d.retry_key for d in line.fake.deliveries]
    assert len(set(keys)) == 3 and all(keys)
    # Once sent, who got it is not kept (the status keeps the counts).
    assert residents_kept(redis_client, f"alert:{alert_id}*", people) == set()


def test_residents_joining_and_leaving_mid_delivery_are_never_messaged_twice(
        redis_client, alert_settings, city, line):
    """Recipients are claimed by scanning the live subscriber set while sending goes on.
    Residents join and leave meanwhile, and a scan may return members it has already
    returned (Redis SSCAN's rule when the set is resized): each still gets one message."""
    stayers = [user(20_000 + n) for n in range(1500)]
    leavers = [user(40_000 + n) for n in range(18_500)]
    joiners = [user(60_000 + n) for n in range(3000)]

    def subscribe(people):
        pipe = redis_client.pipeline()
        for p in people:
            pipe.sadd("sub:kumamoto:area:chuo", p)
            pipe.sadd("sub:kumamoto:topic:fraud", p)
        pipe.execute()

    subscribe(stayers + leavers)
    alert_id = alerts.create_alert(redis_client, city, fraud_alert(send_now=True))
    api = LineApi(alert_settings, retries=0)
    try:
        engine = AlertDelivery(redis_client, api, alert_settings)
        alert = redis_client.hgetall(f"alert:{alert_id}")
        engine._claim(alert_id, alert, "0")  # the first scan step
        for start in range(0, len(leavers), 1000):  # most residents leave (the set shrinks) ...
            redis_client.srem("sub:kumamoto:topic:fraud", *leavers[start:start + 1000])
        subscribe(joiners)  # ... and others join
        engine._claim(alert_id, alert, "0")  # a step that returns members again (here: all of its first ones)
        assert engine.run(alert_id) == "done"
    finally:
        api.close()
    counts = received(line)
    assert set(counts.values()) == {1}
    assert set(stayers) <= set(counts) <= set(stayers + leavers + joiners)
    status = delivery_status.alert_status(redis_client, alert_id, 150)
    assert status.recipients == status.sent == len(counts)


def test_monthly_limit_stops_the_job_with_a_clear_state(redis_client, alert_settings, city, subs, line):
    for n in range(1000):
        subs.set_areas(user(3000 + n), ["nishi"])
        subs.set_topics(user(3000 + n), ["fraud"])
    line.fake.monthly_limit = 500  # one chunk of 500 fits, the other does not
    alert_id = alerts.create_alert(redis_client, city, fraud_alert(areas=["nishi"]))
    assert deliver(redis_client, alert_settings, alert_id) == "stopped_monthly_limit"
    status = delivery_status.alert_status(redis_client, alert_id, 150)
    assert status.state == "stopped_monthly_limit" and "monthly" in status.error
    assert status.sent == 500 and len(received(line)) == 500


@pytest.mark.parametrize("topic", ["dv", "sexual_violence", "victim_support", "stalking"])
def test_sensitive_topics_can_never_be_alerts(redis_client, city, topic):
    with pytest.raises(alerts.AlertError, match="お知らせでは送りません"):
        alerts.create_alert(redis_client, city, fraud_alert(topic=topic))
    assert redis_client.keys("alert:*") == []


def test_titles_stay_neutral_on_the_lock_screen(redis_client, city):
    with pytest.raises(alerts.AlertError, match="ロック画面"):
        alerts.create_alert(redis_client, city, fraud_alert(title="DV被害の相談会"))


def test_one_rate_limit_binds_all_workers(redis_client):
    a, b = RateLimiter(redis_client, "test", 50), RateLimiter(redis_client, "test", 50)
    started = time.perf_counter()
    for n in range(40):
        (a if n % 2 else b).acquire()
    assert time.perf_counter() - started >= 39 / 50 * 0.95


# ------------------------------------------------------------- the worker, killed


def worker_env(alert_settings, **extra):
    env = {**os.environ, "REDIS_URL": alert_settings.redis_url, "LINE_CHANNEL_SECRET": SECRET,
           "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": alert_settings.line_api_base_url,
           "BOT_DATA_DIR": str(alert_settings.data_dir), "ALERT_LEASE_MS": "1500"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.mark.subprocess
@pytest.mark.slow
def test_worker_killed_mid_job_and_restarted_misses_no_one_and_doubles_no_one(
        redis_client, alert_settings, city, subs, line):
    people = [user(5000 + n) for n in range(4321)]  # 9 chunks
    pipe = redis_client.pipeline()
    for p in people:  # the same keys Subscriptions writes, in bulk
        pipe.hset(f"sub:kumamoto:user:{p}", mapping={"areas": "minami", "topics": "missing"})
        pipe.sadd("sub:kumamoto:area:minami", p)
        pipe.sadd("sub:kumamoto:topic:missing", p)
    pipe.execute()
    alert_id = alerts.create_alert(redis_client, city, fraud_alert(topic="missing", areas=["minami"],
                                                                     title="行方不明者の情報提供のお願い"))
    queue.enqueue(alert_settings.redis_url, alert_id)
    slow = worker_env(alert_settings, ALERT_RATE_PER_SECOND=4)  # ~2 s for 9 chunks
    first = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--burst"], cwd=REPO_ROOT, env=slow,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while (int(redis_client.hget(f"alert:{alert_id}", "chunks_done") or 0) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_at_kill = int(redis_client.hget(f"alert:{alert_id}", "chunks_done"))
    assert 3 <= done_at_kill < 9
    status = delivery_status.alert_status(redis_client, alert_id, 4)
    time.sleep(1.6)  # the dead worker's lease runs out
    assert delivery_status.alert_status(redis_client, alert_id, 4).stalled
    second = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], cwd=REPO_ROOT,
                            env=worker_env(alert_settings), capture_output=True, text=True, timeout=60)
    assert "re-queued 1 alert" in second.stdout, second.stdout + second.stderr
    final = delivery_status.alert_status(redis_client, alert_id, 150)
    assert (final.state, final.sent, final.failed, final.chunks_done) == ("done", 4321, 0, 9), final
    counts = received(line)
    assert set(counts) == set(people) and set(counts.values()) == {1}
    assert status.state == "sending"


# ------------------------------------------------------------- staff API and CLI


def test_staff_api_drafts_approves_queues_and_reports(alert_settings, redis_client, client, staff_auth):
    assert client.post("/api/alerts", json=fraud_alert()).status_code == 401
    assert client.post("/api/alerts", json=fraud_alert(),
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    editor, approver = staff_auth["editor1"], staff_auth["approver1"]
    refused = client.post("/api/alerts", json=fraud_alert(topic="dv"), headers=editor)
    assert refused.status_code == 400 and "DV" in refused.json["message"]
    bad_area = client.post("/api/alerts", json=fraud_alert(areas=["mars"]), headers=editor)
    assert bad_area.status_code == 400 and "areas" in bad_area.json["message"]
    assert client.post("/api/alerts", json=fraud_alert(send_now="yes"), headers=editor).status_code == 400
    # a draft awaiting approval, with its reach; nothing is queued until an approver approves
    created = client.post("/api/alerts", json=fraud_alert(send_now=True), headers=editor)
    assert created.status_code == 201 and created.json["state"] == "awaiting_approval"
    assert created.json["reach"]["now"] == 0 and created.json["author"] == "editor1"
    alert_id = created.json["id"]
    assert Queue(queue.QUEUE, connection=queue.rq_connection(alert_settings.redis_url)).count == 0
    assert client.post(f"/api/alerts/{alert_id}/approve", headers=editor).status_code == 403
    approved = client.post(f"/api/alerts/{alert_id}/approve", headers=approver)
    assert approved.status_code == 200 and approved.json["state"] == "queued", approved.json
    assert approved.json["approver"] == "approver1" and approved.json["scheduled_for"] is None
    assert client.post(f"/api/alerts/{alert_id}/approve", headers=staff_auth["approver2"]).status_code == 409
    # an emergency never waits: one approver may send it alone, and the record says so
    urgent = client.post("/api/alerts", json=fraud_alert(topic="emergency", title="緊急治安情報"), headers=approver)
    own = client.post(f"/api/alerts/{urgent.json['id']}/approve", headers=approver)
    assert own.status_code == 403 and "自分で作成" in own.json["message"]  # nobody approves their own
    sent = client.post(f"/api/alerts/{urgent.json['id']}/send_alone", headers=approver)
    assert sent.status_code == 200 and sent.json["sole_approval"] and sent.json["state"] == "queued"
    assert Queue(queue.QUEUE, connection=queue.rq_connection(alert_settings.redis_url)).count == 2
    status = client.get(f"/api/alerts/{alert_id}", headers=editor)
    assert status.status_code == 200 and status.json["delivery"]["state"] == "queued"
    assert "「警察官」を名乗る電話に注意" in status.get_data(as_text=True)  # readable, not \u escapes
    assert set(status.json["delivery"]) >= {"recipients", "sent", "failed", "chunks_total", "chunks_done",
                                            "eta_seconds", "stalled"}
    assert client.get("/api/alerts/nope", headers=editor).status_code == 404
    history = client.get("/api/alerts", headers=editor).json["items"]
    assert [h["id"] for h in history] == [urgent.json["id"], alert_id]


def test_cli_send_and_status(alert_settings, redis_client, subs, line, capsys, monkeypatch):
    subs.set_areas(user(42), ["chuo"]); subs.set_topics(user(42), ["fraud"])  # noqa: E702
    assert main(["alert", "send", "--topic", "dv", "--areas", "chuo", "--title", "x", "--body", "y"],
                settings=alert_settings) == 1
    assert "お知らせでは送りません" in capsys.readouterr().err
    assert main(["alert", "send", "--topic", "fraud", "--areas", "chuo,higashi", "--title", "還付金詐欺に注意",
                 "--body", "市役所職員を名乗り「医療費が戻る」とATMへ誘導する電話。", "--countermeasure",
                 "ATMでお金は戻らない", "--now", "--en-title", "Fake refund calls",
                 "--en-body", "A caller says you can get medical costs back at an ATM.",
                 "--en-countermeasure", "No refund is ever paid at an ATM"], settings=alert_settings) == 0
    alert_id = capsys.readouterr().out.split()[2].rstrip(";")
    english = json.loads(redis_client.hget(f"alert:{alert_id}", "message_en"))
    assert english["altText"] == "Fake refund calls"
    assert "① No refund is ever paid at an ATM" in json.dumps(english, ensure_ascii=False)
    assert main(["alert", "send", "--topic", "fraud", "--areas", "chuo", "--title", "t", "--body", "b",
                 "--en-title", "only a title"], settings=alert_settings) == 1
    assert "en.body" in capsys.readouterr().err
    for key, value in worker_env(alert_settings).items():
        monkeypatch.setenv(key, value)
    from rq import SimpleWorker
    SimpleWorker([queue.QUEUE], connection=queue.rq_connection(alert_settings.redis_url)).work(burst=True)
    assert main(["alert", "status", alert_id], settings=alert_settings) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["sent"], status["recipients"]) == ("done", 1, 1)
    assert received(line) == {user(42): 1}


JST = alerts.JST


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), JST)


@pytest.mark.parametrize("clock, topic, release", [
    ("20:59", "fraud", None),
    ("21:00", "fraud", ("next", "08:00")),
    ("23:30", "suspicious", ("next", "08:00")),
    ("07:59", "safety", ("same", "08:00")),
    ("08:00", "fraud", None),
    ("23:30", "missing", None),      # a search needs eyes tonight
    ("23:30", "emergency", None),    # never waits
])
def test_quiet_hours_window(city, clock, topic, release):
    day = dt.date(2026, 12, 3)
    got = alerts.quiet_until(city.config.quiet_hours, topic, at(day, clock))
    if release is None:
        assert got is None
    else:
        expected_day = day + dt.timedelta(days=1) if release[0] == "next" else day
        assert got == at(expected_day, release[1])


def test_quiet_hours_hold_a_night_alert_until_morning_in_rq_scheduler(redis_client, alert_settings, city):
    night = at(dt.datetime.now(JST).date() + dt.timedelta(days=1), "23:30")  # ahead of real time
    held = alerts.create_alert(redis_client, city, fraud_alert(), now=night)
    status = delivery_status.alert_status(redis_client, held, 150)
    morning = at(night.date() + dt.timedelta(days=1), "08:00")
    assert status.state == "queued" and status.scheduled_for == morning.isoformat()
    assert status.eta_seconds >= (morning - dt.datetime.now(JST)).total_seconds() - 5
    connection = queue.rq_connection(alert_settings.redis_url)
    queue.enqueue(alert_settings.redis_url, held)
    waiting = Queue(queue.QUEUE, connection=connection)
    assert waiting.count == 0  # nothing to send tonight
    registry = ScheduledJobRegistry(queue=waiting)
    (job_id,) = registry.get_job_ids()
    assert registry.get_scheduled_time(job_id) == morning
    # the same night: an emergency, a missing person and a staff override go at once
    for data in (fraud_alert(topic="emergency"), fraud_alert(topic="missing"), fraud_alert(send_now=True)):
        alert_id = alerts.create_alert(redis_client, city, data, now=night)
        assert delivery_status.alert_status(redis_client, alert_id, 150).scheduled_for is None
        queue.enqueue(alert_settings.redis_url, alert_id)
    assert waiting.count == 3


@pytest.mark.parametrize("bad", [{"start": "25:00", "end": "08:00", "topics": ["fraud"]},
                                 {"start": "21:00", "end": "21:00", "topics": ["fraud"]},
                                 {"start": "21:00", "end": "08:00", "topics": ["emergency"]}])
def test_quiet_hours_that_make_no_sense_cannot_load(bad):
    from bot.content.schema import QuietHours

    with pytest.raises(ValidationError):
        QuietHours.model_validate(bad)


def test_the_line_client_keeps_a_connection_for_every_sending_thread(alert_settings):
    # Fewer would open and drop a TLS connection per request whenever more are in flight.
    api = LineApi(alert_settings.with_(alert_send_concurrency=48))
    try:
        assert api.client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 48
    finally:
        api.close()
