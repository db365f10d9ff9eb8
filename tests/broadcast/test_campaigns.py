"""A two-variant campaign to a few thousand subscribers, clicks on tracked links, in-chat
answers by postback, and exact statistics (counts, rates, split, CSV)."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from bot.broadcast import actions, campaigns
from bot.broadcast.campaign_delivery import CampaignDelivery
from bot.content.loader import load_catalog
from bot.core.clock import JST
from bot.core.postback import postback_data
from bot.line.api import LineApi
from bot.settings import REPO_ROOT
from tests.line_helpers import CONSOLE_KEY, SECRET, TOKEN, body_of, event, residents_kept, run_with_line, sign, user

SURVEY = "https://example.city.jp/survey?id=r6"
SPEC = {
    "name": "犯罪被害者支援窓口の認知度",
    "topics": ["safety"],
    "areas": ["all"],
    "variants": [
        {"name": "A", "title": "くらしの安全アンケート", "text": "相談先を知っていますか？ 1分で答えられます。"},
        {"name": "B", "title": "1分アンケートのお願い", "text": "周りの人を守るために、1分だけ教えてください。",
         "button": "答える（1分）"},
    ],
    "survey": {"url": SURVEY, "questions": [
        {"text": "事件にあったときの相談先を知っていますか？", "options": ["知っている", "知らない"]},
        {"text": "どこで知りましたか？", "options": ["市の広報", "LINE", "その他"]},
    ]},
}


@pytest.fixture
def app_settings(settings, line):
    """Overrides conftest's: the `app` and `client` fixtures run with these settings here."""
    return settings.with_(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_base_url=line.url,
                          secret_key=CONSOLE_KEY, alert_rate_per_second=2000.0, public_url="https://bot.example.jp",
                          alert_send_concurrency=4)  # several pushes in flight; the fake shares this process


@pytest.fixture
def setup(app_settings, app, client):
    return app_settings, app, client


NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=JST)  # outside the city's quiet hours


def create(redis_client, spec):
    """A campaign stored for delivery, as the records store it when it is approved."""
    city = load_catalog(REPO_ROOT).city("kumamoto")
    return campaigns.create_campaign(redis_client, city.id, [a.id for a in city.config.areas], spec)


def deliver(settings, redis_client, campaign_id, now=NOON):
    """What staff's 「送信」 does (actions.send_campaign, at `now`), then the job a worker runs."""
    city = load_catalog(settings.content_root).city("kumamoto")
    actions.send_campaign(redis_client, settings.redis_url, city, campaign_id, now=now)
    return run_with_line(CampaignDelivery, redis_client, settings, campaign_id)


def subscribe(redis_client, people, area="chuo", topic="safety"):
    pipe = redis_client.pipeline()
    for p in people:
        pipe.hset(f"sub:kumamoto:user:{p}", mapping={"areas": area, "topics": topic})
        pipe.sadd(f"sub:kumamoto:area:{area}", p)
        pipe.sadd(f"sub:kumamoto:topic:{topic}", p)
    pipe.execute()


def test_campaign_end_to_end_with_exact_stats(setup, line, line_user, redis_client, caplog):
    settings, app, client = setup
    people = [user(20000 + n) for n in range(2345)]
    subscribe(redis_client, people[:2000], "chuo")
    subscribe(redis_client, people[2000:], "kita")
    subscribe(redis_client, [user(99999)], "chuo", topic="fraud")  # not targeted

    campaign_id = create(redis_client, SPEC)
    assert deliver(settings, redis_client, campaign_id) == "done"

    # one push per recipient, each with their own link, each tagged with its variant's unit
    pushes = [d for d in line.fake.deliveries if d.endpoint == "push"]
    assert sorted(d.to[0] for d in pushes) == sorted(people)
    variant_of = {p: campaigns.assign_variant(campaign_id, p, campaigns.load(redis_client, campaign_id).variants).name
                  for p in people}
    split = collections.Counter(variant_of.values())
    assert split["A"] + split["B"] == 2345 and abs(split["A"] - split["B"]) < 250  # even split (5 sigma)
    links = {}
    for d in pushes:
        bubble = d.messages[0]["contents"]
        assert d.messages[0]["altText"] in ("くらしの安全アンケート", "1分アンケートのお願い")
        links[d.to[0]] = bubble["footer"]["contents"][0]["action"]["uri"]
        assert d.units == [campaigns.unit_name(campaign_id, variant_of[d.to[0]])]
    assert len(set(links.values())) == 2345 and all(u.startswith("https://bot.example.jp/r/") for u in links.values())
    # Sent: nothing ties a resident to their link (or their click) any more.
    assert residents_kept(redis_client, f"campaign:{campaign_id}*", people) == set()

    # clicks: the first 300 A-recipients and 500 B-recipients click; 40 of them twice
    a_people = [p for p in people if variant_of[p] == "A"][:300]
    b_people = [p for p in people if variant_of[p] == "B"][:500]
    for n, p in enumerate(a_people + b_people):
        path = urlparse(links[p]).path
        for _ in range(2 if n < 40 else 1):
            response = client.get(path)
            assert response.status_code == 302 and response.headers["Location"] == SURVEY

    # in-chat answers: 100 A-recipients answer q0 (60 know, 40 don't); 10 of them change their mind
    answerers = [p for p in people if variant_of[p] == "A"][-100:]
    for n, p in enumerate(answerers):
        line_user(p).postback(postback_data("answer", c=campaign_id, q="0", o="0" if n < 60 else "1"))
    for p in answerers[:10]:
        line_user(p).postback(postback_data("answer", c=campaign_id, q="0", o="1"))
    second_question = line.fake.messages_for(answerers[0])[-1][1]
    assert "どこで知りましたか" in second_question["text"]

    # an unknown or malformed token: a plain 404, and no error in the log
    with caplog.at_level(logging.INFO):
        assert client.get("/r/doesnotexist").status_code == 404
        assert client.get("/r/" + "x" * 200).status_code == 404
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    report = campaigns.campaign_stats(redis_client, campaign_id)
    a, b = report["variants"]["A"], report["variants"]["B"]
    assert (a["delivered"], b["delivered"]) == (split["A"], split["B"])
    assert (a["unique_clicks"], b["unique_clicks"]) == (300, 500)
    assert a["clicks"] + b["clicks"] == 840
    assert a["click_rate"]["rate"] == pytest.approx(300 / split["A"])
    assert a["click_rate"]["low"] < a["click_rate"]["rate"] < a["click_rate"]["high"]
    assert (a["responses"], b["responses"]) == (100, 0)
    assert a["answers"][0] == {"知っている": 50, "知らない": 50}
    assert a["opens"] == "not yet known" and a["open_rate"] == "not yet known"
    assert report["comparison"]["click"].startswith("B is better than A")
    assert report["baseline"]["click_rate"] == pytest.approx(0.0313, abs=1e-4)
    csv = campaigns.stats_csv(report, campaigns.load(redis_client, campaign_id).survey.questions)
    lines = csv.strip().splitlines()
    assert lines[0].startswith("variant,delivered")
    assert lines[1].startswith(f"A,{split['A']},not yet known,not yet known,300,")
    assert "知っている,50" in csv  # the answers per option are in the file too


def test_campaign_refuses_sensitive_segments_and_wording(setup, redis_client, staff_auth):
    _, _, client = setup
    auth = staff_auth["editor1"]
    bad_topic = client.post("/api/campaigns", json={**SPEC, "topics": ["dv"]}, headers=auth)
    assert bad_topic.status_code == 400 and "相談の話題" in bad_topic.json["message"]
    everyone = client.post("/api/campaigns", json={**SPEC, "topics": ["all"]}, headers=auth)
    assert everyone.status_code == 201 and everyone.json["state"] == "awaiting_approval"
    assert everyone.json["request"]["topics"] == list(campaigns.TOPICS)
    bad_title = dict(SPEC, variants=[dict(SPEC["variants"][0], title="DV相談のアンケート")])
    assert client.post("/api/campaigns", json=bad_title, headers=auth).status_code == 400
    hidden = dict(SPEC, variants=[dict(SPEC["variants"][0], title="D\u200bV相談のアンケート")])  # zero-width space
    assert client.post("/api/campaigns", json=hidden, headers=auth).status_code == 400
    blank = dict(SPEC, variants=[dict(SPEC["variants"][0], title=" \u3000\u200b ")])
    assert client.post("/api/campaigns", json=blank, headers=auth).status_code == 400


def test_multicast_mode_without_click_tracking_tags_units(setup, line, redis_client):
    settings, _, client = setup
    subscribe(redis_client, [user(30000 + n) for n in range(700)], "nishi")
    spec = dict(SPEC, track_clicks=False)
    campaign_id = create(redis_client, spec)
    line.fake.fail_next("multicast", 500, after_accept=True)  # a lost response is resent and answered 409
    assert deliver(settings, redis_client, campaign_id) == "done"
    multicasts = [d for d in line.fake.deliveries if d.endpoint == "multicast"]
    received = collections.Counter(u for d in multicasts for u in d.to)
    assert len(received) == 700 and set(received.values()) == {1}
    assert {tuple(d.units) for d in multicasts} == {(f"{campaign_id}_A",), (f"{campaign_id}_B",)}
    report = campaigns.campaign_stats(redis_client, campaign_id)
    assert report["variants"]["A"]["delivered"] + report["variants"]["B"]["delivered"] == 700


def test_line_statistics_are_fetched_and_withheld_values_stay_unknown(setup, line, redis_client):
    from linebot.v3.insight import ApiClient, Configuration, Insight
    from rq.registry import ScheduledJobRegistry

    from bot.broadcast import queue

    settings, _, client = setup
    subscribe(redis_client, [user(40000 + n) for n in range(200)], "higashi")
    campaign_id = create(redis_client, dict(SPEC, track_clicks=False))
    assert deliver(settings, redis_client, campaign_id) == "done"
    # sending schedules the first statistics fetch an hour later
    registry = ScheduledJobRegistry(queue.QUEUE, connection=queue.rq_connection(settings.redis_url))
    assert registry.count == 1

    line.fake.unit_stats[f"{campaign_id}_A"] = {"uniqueImpression": 25, "uniqueClick": 7}  # 7: withheld
    line.fake.unit_stats[f"{campaign_id}_B"] = {"uniqueImpression": 12, "uniqueClick": 3}  # both withheld
    insight_client = ApiClient(Configuration(host=line.url, access_token=TOKEN))
    try:
        snapshot = campaigns.fetch_insights(redis_client, Insight(insight_client), campaign_id)
    finally:
        insight_client.close()
    assert snapshot["A:uniqueImpression"] == "25" and snapshot["A:uniqueClick"] == "null"
    assert snapshot["B:uniqueImpression"] == "null"
    report = campaigns.campaign_stats(redis_client, campaign_id)
    a, b = report["variants"]["A"], report["variants"]["B"]
    assert a["opens"] == 25 and a["open_rate"]["rate"] == pytest.approx(25 / a["delivered"])
    assert b["opens"] == "not yet known" and b["open_rate"] == "not yet known"
    assert a["line_unique_clicks"] == "not yet known"
    # LINE's estimate above our own delivered count never yields a rate over 100%
    redis_client.hset(f"campaign:{campaign_id}:insight", "A:uniqueImpression", a["delivered"] + 5)
    over = campaigns.campaign_stats(redis_client, campaign_id)["variants"]["A"]
    assert over["open_rate"]["rate"] == 1.0


def test_funnel_chart_against_the_baseline(setup, redis_client):
    import xml.etree.ElementTree as ET

    _, _, client = setup
    campaign_id = create(redis_client, SPEC)
    redis_client.set(f"campaign:{campaign_id}:delivered:A", 1000)
    redis_client.set(f"campaign:{campaign_id}:delivered:B", 1000)
    redis_client.sadd(f"campaign:{campaign_id}:clickers:B", *[f"t{n}" for n in range(80)])
    svg = ET.fromstring(campaigns.chart_svg(campaigns.campaign_stats(redis_client, campaign_id)))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "熊本 クリック 3.1%" in texts and "8.0%" in texts and "未確定" in texts  # opens not yet known
    assert any(t and t.startswith("A (配信 1,000)") for t in texts)


def test_optional_free_text_is_counted_never_stored_and_never_hides_a_crisis(setup, line, redis_client):
    settings, _, client = setup
    spec = dict(SPEC, survey=dict(SPEC["survey"], free_text=True))
    campaign_id = create(redis_client, spec)

    def tap(p, data):
        raw = body_of(event("postback", p, reply_token=line.fake.issue_reply_token(p), postback={"data": data}))
        client.post("/callback", data=raw, headers={"X-Line-Signature": sign(raw)})

    def say(p, text):
        raw = body_of(event("message", p, reply_token=line.fake.issue_reply_token(p), message={
            "type": "text", "id": "1", "text": text, "quoteToken": "q"}))
        client.post("/callback", data=raw, headers={"X-Line-Signature": sign(raw)})
        return line.fake.messages_for(p)[-1][1]

    alice, bob = user(50001), user(50002)
    for p in (alice, bob):
        tap(p, postback_data("answer", c=campaign_id, q="0", o="0"))
        tap(p, postback_data("answer", c=campaign_id, q="1", o="1"))
    assert "自由にお書きください" in line.fake.messages_for(alice)[-1][1]["text"]
    secret_words = "窓口の場所が分かりにくい山田より"
    assert "ありがとう" in say(alice, secret_words)["text"]
    crisis = say(bob, "もう死にたい")  # a crisis is answered as a crisis, not counted as a comment
    assert "119" in json_dump(line.fake.messages_for(bob)[-2:])
    report = campaigns.campaign_stats(redis_client, campaign_id)
    assert report["free_text_answered"] == 1
    dump = " ".join(str(redis_client.hgetall(k)) if redis_client.type(k) == "hash" else str(redis_client.get(k))
                    for k in redis_client.keys("*") if redis_client.type(k) in ("hash", "string"))
    assert "山田" not in dump and "分かりにくい" not in dump
    assert crisis


def json_dump(rows):
    import json
    return json.dumps([m for _, m in rows], ensure_ascii=False)


# ------------------------------------------------ the same engine guarantees as alerts (issue 12)


def pushes_per_resident(line):
    return collections.Counter(d.to[0] for d in line.fake.deliveries if d.endpoint == "push")


def test_tracked_pushes_survive_429_500_and_lost_responses_exactly_once(setup, line, redis_client):
    settings, _, _ = setup
    people = [user(60000 + n) for n in range(1234)]  # 3 chunks
    subscribe(redis_client, people, "higashi")
    campaign_id = campaigns.create_campaign(redis_client, "kumamoto", ["chuo", "higashi", "all"], SPEC)
    line.fake.fail_next("push", 429, count=3)
    line.fake.fail_next("push", 500, count=2)
    line.fake.fail_next("push", 500, after_accept=True, count=3)  # accepted, then the answer is lost
    assert deliver(settings, redis_client, campaign_id) == "done"
    counts = pushes_per_resident(line)
    assert set(counts) == set(people) and set(counts.values()) == {1}
    report = campaigns.campaign_stats(redis_client, campaign_id)
    assert sum(v["delivered"] for v in report["variants"].values()) == 1234
    assert residents_kept(redis_client, f"campaign:{campaign_id}*", people) == set()


def test_residents_joining_and_leaving_mid_campaign_are_never_messaged_twice(setup, line, redis_client):
    settings, _, _ = setup
    stayers = [user(70000 + n) for n in range(700)]
    leavers = [user(71000 + n) for n in range(900)]
    joiners = [user(73000 + n) for n in range(600)]
    subscribe(redis_client, stayers + leavers, "chuo")
    campaign_id = campaigns.create_campaign(redis_client, "kumamoto", ["chuo", "all"], dict(SPEC, track_clicks=False))
    city = load_catalog(settings.content_root).city("kumamoto")
    actions.send_campaign(redis_client, settings.redis_url, city, campaign_id, now=NOON)
    api = LineApi(settings, retries=0)
    try:
        engine = CampaignDelivery(redis_client, api, settings)
        item = redis_client.hgetall(f"campaign:{campaign_id}")
        engine._claim(campaign_id, item, "0")  # the first scan step freezes the audience
        for p in leavers:  # they leave the area (the topic set was copied when sending began) ...
            redis_client.srem("sub:kumamoto:area:chuo", p)
        subscribe(redis_client, joiners, "chuo")  # ... and others join
        engine._claim(campaign_id, item, "0")  # a step that returns members again
        assert engine.run(campaign_id) == "done"
    finally:
        api.close()
    received = collections.Counter(u for d in line.fake.deliveries if d.endpoint == "multicast" for u in d.to)
    assert set(received.values()) == {1}
    assert set(stayers) <= set(received) <= set(stayers + leavers)


@pytest.mark.subprocess
@pytest.mark.slow
def test_campaign_worker_killed_mid_job_and_restarted_misses_no_one_and_doubles_no_one(
        setup, line, redis_client):
    settings, _, _ = setup
    people = [user(80000 + n) for n in range(1100)]  # 3 chunks, one push each
    subscribe(redis_client, people, "minami")
    campaign_id = campaigns.create_campaign(redis_client, "kumamoto", ["minami", "all"], SPEC)
    city = load_catalog(settings.content_root).city("kumamoto")
    actions.send_campaign(redis_client, settings.redis_url, city, campaign_id, now=NOON)
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LINE_CHANNEL_SECRET": SECRET,
           "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": settings.line_api_base_url,
           "BOT_DATA_DIR": str(settings.data_dir), "ALERT_LEASE_MS": "1500", "PUBLIC_URL": settings.public_url,
           "ALERT_SEND_CONCURRENCY": "2"}
    slow = {**env, "ALERT_RATE_PER_SECOND": "30"}  # pushes at 300/s: about 4 s for 1,100
    first = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--burst"], cwd=REPO_ROOT, env=slow,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(pushes_per_resident(line)) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert 300 <= len(pushes_per_resident(line)) < 1100
    time.sleep(1.6)  # the dead worker's lease runs out
    second = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=90)
    assert "re-queued 1 alert(s)/campaign(s)" in second.stdout, second.stdout + second.stderr
    counts = pushes_per_resident(line)
    # Pushes answered after the kill were accepted by LINE; their resends carry the same retry
    # key and are answered 409, so each resident holds one message.
    assert set(counts) == set(people)
    accepted = collections.Counter(d.to[0] for d in line.fake.deliveries if d.endpoint == "push")
    assert set(accepted.values()) == {1}
    report = campaigns.campaign_stats(redis_client, campaign_id)
    assert report["state"] == "done", second.stdout + second.stderr
    assert sum(v["delivered"] for v in report["variants"].values()) == 1100


def test_a_campaign_sent_in_quiet_hours_waits_for_the_morning(setup, line, redis_client):
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from bot.broadcast import queue

    settings, _, client = setup
    subscribe(redis_client, [user(90000 + n) for n in range(50)], "kita")
    campaign_id = campaigns.create_campaign(redis_client, "kumamoto", ["kita", "all"], SPEC)
    city = load_catalog(settings.content_root).city("kumamoto")
    night = dt.datetime.now(JST).replace(hour=23, minute=30, second=0, microsecond=0) + dt.timedelta(days=1)
    held = actions.send_campaign(redis_client, settings.redis_url, city, campaign_id, now=night)
    morning = (night + dt.timedelta(days=1)).replace(hour=8, minute=0)
    assert held == morning.isoformat()
    waiting = Queue(queue.QUEUE, connection=queue.rq_connection(settings.redis_url))
    registry = ScheduledJobRegistry(queue=waiting)
    (job_id,) = registry.get_job_ids()
    assert registry.get_scheduled_time(job_id) == morning and waiting.count == 0
    # A worker that runs it early (a clock set wrong) sends nothing before the morning.
    api = LineApi(settings, retries=0)
    try:
        assert CampaignDelivery(redis_client, api, settings).run(campaign_id) == "waiting for the end of quiet hours"
    finally:
        api.close()
    assert pushes_per_resident(line) == {}
    # and staff cannot send it twice
    with pytest.raises(campaigns.CampaignError):
        actions.send_campaign(redis_client, settings.redis_url, load_catalog(settings.content_root).city("kumamoto"),
                              campaign_id)


def test_staff_see_when_a_held_campaign_goes_out_and_insights_fail_in_one_line(setup, redis_client):
    """Found by trying the CLI as staff: `campaign stats` did not say when a campaign held by
    quiet hours goes out, and `campaign insights` without a way to LINE died in a traceback."""
    from click.testing import CliRunner

    from bot.cli import cli

    settings, _, _ = setup
    campaign_id = campaigns.create_campaign(redis_client, "kumamoto", ["kita", "all"], SPEC)
    city = load_catalog(settings.content_root).city("kumamoto")
    night = dt.datetime.now(JST).replace(hour=23, minute=30, second=0, microsecond=0) + dt.timedelta(days=1)
    held = actions.send_campaign(redis_client, settings.redis_url, city, campaign_id, now=night)
    assert campaigns.campaign_stats(redis_client, campaign_id)["scheduled_for"] == held
    no_line = settings.with_(line_channel_access_token=None, line_api_base_url="https://api.line.me")
    result = CliRunner().invoke(cli, ["campaign", "insights", campaign_id], obj=no_line)
    assert result.exit_code == 1 and "has not gone out yet" in result.output and "Traceback" not in result.output
    redis_client.hset(f"campaign:{campaign_id}", "state", "done")
    result = CliRunner().invoke(cli, ["campaign", "insights", campaign_id], obj=no_line)
    assert result.exit_code == 2 and "set LINE_CHANNEL_ACCESS_TOKEN" in result.output


def test_every_mistake_of_a_campaign_file_is_listed_at_once(redis_client):
    bad = dict(SPEC, survey={"url": "http://example.city.jp/s", "questions": [{"text": "q", "options": ["only"]}]},
               variants=[dict(SPEC["variants"][0], name="a")])
    with pytest.raises(campaigns.CampaignError) as exc:
        campaigns.create_campaign(redis_client, "kumamoto", ["chuo", "all"], bad)
    message = str(exc.value)
    assert message.count(";") >= 2 and "survey.url" in message and "options" in message and "variants.0.name" in message
