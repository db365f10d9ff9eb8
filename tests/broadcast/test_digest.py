"""The optional daily digest: residents who choose it get non-urgent alerts once a day as
one carousel, emergencies at once; switching mode never loses or doubles an alert."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from bot.broadcast import alerts, digest, jobs, queue
from bot.broadcast import status as delivery_status
from bot.broadcast.alert_delivery import AlertDelivery
from bot.broadcast.digest import DigestDelivery
from bot.cli import main
from bot.core.postback import postback_data
from tests.line_helpers import SECRET, TOKEN, residents_kept, user
from tests.line_helpers import run_with_line as run


def alert(**over):
    data = {"topic": "fraud", "areas": ["chuo"], "title": "「警察官」を名乗る電話に注意",
            "body": "警察官を名乗り「口座が犯罪に使われている」と言って、カードを求める電話。", "send_now": True}
    data.update(over)
    return data


def inbox(line):
    """user id -> the messages multicast to them, in order."""
    out: dict[str, list[dict]] = {}
    for d in line.fake.deliveries:
        if d.endpoint == "multicast":
            for resident in d.to:
                out.setdefault(resident, []).extend(d.messages)
    return out


def test_choosing_the_digest_in_the_settings(line_user, subs):
    resident = user(300)
    chat = line_user(resident)
    chat.postback(postback_data("area", a="chuo"))
    shown = json.dumps(chat.postback(postback_data("done"))[-1], ensure_ascii=False)
    assert "受け取り方: 届いたらすぐ" in shown and "act=mode&m=digest" in shown
    shown = json.dumps(chat.postback(postback_data("mode", m="digest"))[-1], ensure_ascii=False)
    assert subs.wants_digest(resident)
    assert "1日1回まとめて (18:00)" in shown and "すぐに届きます" in shown and "act=mode&m=now" in shown
    chat.postback(postback_data("mode", m="now"))
    assert not subs.wants_digest(resident)
    # a malformed choice gets the menu
    assert "どんなことでお困りですか" in json.dumps(chat.postback("act=mode&m=sometimes")[-1], ensure_ascii=False)
    chat.postback(postback_data("mode", m="digest"))
    chat.postback(postback_data("stop"))  # stopping alerts forgets the choice too
    assert not subs.wants_digest(resident)


def test_digest_residents_get_one_carousel_a_day_and_emergencies_at_once(
        redis_client, alert_settings, city, subs, line):
    at_once, daily, daily_en, elsewhere = user(310), user(311), user(312), user(313)
    for resident, area in ((at_once, "chuo"), (daily, "chuo"), (daily_en, "all"), (elsewhere, "higashi")):
        subs.set_areas(resident, [area])
        subs.set_topics(resident, ["fraud", "suspicious", "emergency"])
    for resident in (daily, daily_en, elsewhere):
        subs.set_digest(resident, True)
    subs.set_language(daily_en, "en")

    fraud = alerts.create_alert(redis_client, city, alert(en={
        "title": "Beware of fake police calls", "body": "A caller says your account was used in a crime."}))
    suspicious = alerts.create_alert(redis_client, city, alert(topic="suspicious", title="下校中の声かけに注意"))
    urgent = alerts.create_alert(redis_client, city, alert(topic="emergency", title="緊急治安情報"))
    for alert_id in (fraud, suspicious, urgent):
        assert run(AlertDelivery, redis_client, alert_settings, alert_id) == "done"

    got = inbox(line)
    assert [m["altText"] for m in got[at_once]] == ["「警察官」を名乗る電話に注意", "下校中の声かけに注意", "緊急治安情報"]
    assert [m["altText"] for m in got[daily]] == ["緊急治安情報"]  # emergencies never wait
    assert [m["altText"] for m in got[daily_en]] == ["緊急治安情報"]
    assert elsewhere not in got  # not in the alert's area: neither now nor later
    status = delivery_status.alert_status(redis_client, fraud, 150)
    assert (status.recipients, status.sent, status.deferred) == (1, 1, 2)
    slot = dt.datetime.fromisoformat(status.digest_at)
    assert slot.strftime("%H:%M") == "18:00"
    day = slot.date().isoformat()

    # The digest job was queued for 18:00 (or now, if that has passed) by the first delivery.
    connection = queue.rq_connection(alert_settings.redis_url)
    queued = Queue(queue.QUEUE, connection=connection)
    waiting = ScheduledJobRegistry(queue=queued).get_job_ids() + queued.job_ids
    assert any(queued.fetch_job(j).func_name == "bot.broadcast.jobs.deliver_digest" for j in waiting)

    # Switching back after the alerts were set aside loses nothing: they are still owed;
    # a resident who stopped alerts meanwhile is owed nothing.
    subs.set_digest(daily, False)
    gone = user(314)
    subs.set_areas(gone, ["chuo"]); subs.set_topics(gone, ["fraud"]); subs.set_digest(gone, True)  # noqa: E702
    redis_client.sadd(f"alert:{fraud}:deferred", gone)  # as the claim step would have
    subs.remove_user(gone)
    line.fake.deliveries.clear()
    result = run(DigestDelivery, redis_client, alert_settings, f"kumamoto:{day}")
    assert result == "1 group(s): done", result  # both are owed the same two alerts
    got = inbox(line)
    assert set(got) == {daily, daily_en}
    (carousel,) = got[daily]
    assert carousel["altText"] == "今日の防犯のお知らせ (2)"
    assert [b["body"]["contents"][1]["text"] for b in carousel["contents"]["contents"]] == [
        "「警察官」を名乗る電話に注意", "下校中の声かけに注意"]
    (english,) = got[daily_en]
    assert english["altText"] == "Today's safety alerts (2)"
    assert [b["body"]["contents"][1]["text"] for b in english["contents"]["contents"]] == [
        "Beware of fake police calls", "下校中の声かけに注意"]  # the English version where staff wrote one

    assert residents_kept(redis_client, "alert:*", [daily, daily_en, gone]) == set()  # nothing kept once sent

    line.fake.deliveries.clear()
    run(DigestDelivery, redis_client, alert_settings, f"kumamoto:{day}")  # a second run (a retry) sends nothing
    assert inbox(line) == {}


def test_the_digest_waits_for_the_days_alerts_and_later_alerts_join_the_next_day(
        redis_client, alert_settings, city, subs, line, monkeypatch, capsys):
    resident = user(320)
    subs.set_areas(resident, ["chuo"]); subs.set_topics(resident, ["fraud"]); subs.set_digest(resident, True)  # noqa: E702
    now = dt.datetime(2026, 12, 3, 17, 0, tzinfo=alerts.JST)
    first = alerts.create_alert(redis_client, city, alert(), now=now)
    assert delivery_status.alert_status(redis_client, first, 150).digest_at == "2026-12-03T18:00:00+09:00"

    # 18:00: the job finds the day's alert not delivered yet, so it waits and tries again.
    result = run(DigestDelivery, redis_client, alert_settings, "kumamoto:2026-12-03")
    assert result == "waiting for 1 alert(s) of the day"
    rq_queue = Queue(queue.QUEUE, connection=queue.rq_connection(alert_settings.redis_url))
    assert ScheduledJobRegistry(queue=rq_queue).count == 1
    # An alert created once the day's digest is closed goes into the next day's.
    late = alerts.create_alert(redis_client, city, alert(title="遅れて届いた注意情報"), now=now)
    assert delivery_status.alert_status(redis_client, late, 150).digest_at == "2026-12-04T18:00:00+09:00"

    # Stopped by LINE's monthly limit is not finished either: it resumes, and may set more aside.
    redis_client.hset(f"alert:{first}", "state", "stopped_monthly_limit")
    assert run(DigestDelivery, redis_client, alert_settings, "kumamoto:2026-12-03") == (
        "waiting for 1 alert(s) of the day")
    redis_client.hset(f"alert:{first}", "state", "queued")
    assert run(AlertDelivery, redis_client, alert_settings, first) == "done"
    assert inbox(line) == {}  # set aside for the digest
    # Through RQ, as a worker runs it.
    for key, value in {"REDIS_URL": alert_settings.redis_url, "LINE_CHANNEL_SECRET": SECRET,
                       "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": alert_settings.line_api_base_url,
                       "BOT_DATA_DIR": str(alert_settings.data_dir)}.items():
        monkeypatch.setenv(key, value)
    job = rq_queue.enqueue(jobs.deliver_digest, "kumamoto", "2026-12-03")
    SimpleWorker([rq_queue], connection=rq_queue.connection).work(burst=True)
    assert job.return_value() == "1 group(s): done"
    assert [m["altText"] for m in inbox(line)[resident]] == ["今日の防犯のお知らせ (1)"]

    # Staff see the day's digest from the CLI.
    assert main(["alert", "digest", "--day", "2026-12-03"], settings=alert_settings) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["state"], report["alerts"], report["residents"]) == ("done", [first], 1)
    assert [(g["state"], g["sent"]) for g in report["groups"]] == [("done", 1)]
    assert main(["alert", "digest", "--day", "2026-01-01"], settings=alert_settings) == 1


def test_a_digest_inside_quiet_hours_cannot_load():
    from bot.content.schema import CityFile

    base = {"id": "x", "name": {"ja": "x"}, "menu": [{"intent": "dv", "label": {"ja": "x"}}],
            "fallback": {"text": {"ja": "x"}, "desks": ["d"]}, "harmless_card": {"title": {"ja": "x"},
                                                                                  "body": {"ja": "x"}},
            "welcome": {"ja": "x"}, "areas": [{"id": "a", "label": {"ja": "a"}}],
            "topics": [{"id": "fraud", "label": {"ja": "詐欺"}}], "alert_desks": {"fraud": "d"},
            "quiet_hours": {"start": "21:00", "end": "08:00", "topics": ["fraud"]}}
    CityFile.model_validate({**base, "digest": {"time": "18:00", "topics": ["fraud"]}})
    for bad in ({"time": "22:30", "topics": ["fraud"]}, {"time": "18:00", "topics": ["emergency"]},
                {"time": "18:00", "topics": ["missing"]}):
        with pytest.raises(ValidationError):
            CityFile.model_validate({**base, "digest": bad})
    assert digest.next_slot(CityFile.model_validate({**base, "digest": {"time": "18:00", "topics": ["fraud"]}})
                            .digest, dt.datetime(2026, 12, 3, 18, 0, 1, tzinfo=alerts.JST)).day == 4
