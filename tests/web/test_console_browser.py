"""The staff console in a real headless Chromium, as city staff use it with only the README:
an editor drafts an alert (preview and reach, no way to send it), an approver approves it, a
worker delivers it to the fake LINE API and the history names both; a scheduled alert is
cancelled before its time and nothing is sent; a two-variant campaign is created, approved,
sent and its results opened; an admin reads all of it in the audit log. A screenshot of every
page is kept under test-artifacts/console-*.png."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from bot.broadcast.alert_delivery import AlertDelivery
from bot.broadcast.campaign_delivery import CampaignDelivery
from bot.core.clock import JST
from bot.core.keys import campaign_key
from tests.line_helpers import run_with_line, user
from tests.web.test_simulator_browser import ARTIFACTS, CHROMIUM, FLAGS

pytestmark = pytest.mark.browser


@pytest.fixture
def console(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def subscribe(redis_client, people, area, topic):
    pipe = redis_client.pipeline()
    for p in people:
        pipe.sadd(f"sub:kumamoto:area:{area}", p).sadd(f"sub:kumamoto:topic:{topic}", p)
    pipe.execute()


def test_staff_work_in_the_console(console, app_settings, staff_auth, redis_client, line):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/test.sh installs it)"
    expect.set_options(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    subscribe(redis_client, [user(n) for n in range(40)], "chuo", "fraud")
    subscribe(redis_client, [user(100 + n) for n in range(30)], "kita", "safety")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)

        def sign_in(name):
            page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP").new_page()
            page.goto(console + "/admin/")
            expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
            page.get_by_label("職員名").fill(name)
            page.get_by_label("パスワード").fill(f"password-{name}")
            page.get_by_role("button", name="ログイン").click()
            expect(page.get_by_role("heading", name="概要")).to_be_visible()
            return page

        def compose(page, topic, ward, title, body):
            page.get_by_role("link", name="お知らせを作る", exact=True).click()
            page.locator("#topic").select_option(topic)
            page.get_by_role("checkbox", name=ward).check()
            page.locator("#title").fill(title)
            page.locator("#body").fill(body)

        def shot(page, name):
            page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)

        try:
            # ---- an editor drafts an alert: the preview and the reach, and no way to send it
            editor = sign_in("editor1")
            shot(editor, "overview")
            compose(editor, "fraud", "中央区", "「市役所」を名乗る還付金の電話に注意",
                    "市役所の職員を名乗り「医療費の還付がある」とATMへ誘導する電話が続いています。")
            editor.locator("#countermeasure_1").fill("ATMでお金は戻りません")
            editor.get_by_label("すぐ送る（夜間でも送る）").check()
            card = editor.locator("#preview-card .card")
            expect(card).to_contain_text("「市役所」を名乗る還付金の電話に注意")
            expect(card.locator("button.btn")).to_contain_text("電話")
            expect(editor.locator("#alt-text")).to_have_text("「市役所」を名乗る還付金の電話に注意")
            expect(editor.locator("#reach")).to_contain_text("いま送ると届く人数：40人")
            shot(editor, "alert-compose")
            editor.get_by_role("button", name="保存して承認を依頼").click()
            expect(editor.locator(".state")).to_have_text("承認待ち")
            expect(editor.get_by_role("button", name="承認して送る")).to_have_count(0)
            alert_url = editor.url
            assert line.fake.deliveries == []

            # ---- an approver approves it; a worker delivers it; the history names both
            approver = sign_in("approver1")
            expect(approver.locator(".panel", has_text="承認待ち")).to_contain_text("還付金の電話")
            approver.get_by_role("link", name="「市役所」を名乗る還付金の電話に注意").first.click()
            shot(approver, "alert-awaiting-approval")
            approver.get_by_role("button", name="承認して送る").click()
            expect(approver.locator(".state")).to_have_text("送信待ち")
            alert_id = alert_url.rsplit("/", 1)[1]
            assert run_with_line(AlertDelivery, redis_client, app_settings, alert_id) == "done"
            received = {u for d in line.fake.deliveries for u in d.to}
            assert received == {user(n) for n in range(40)}
            approver.reload()
            expect(approver.locator(".state")).to_have_text("送信完了")
            expect(approver.locator("dl.record")).to_contain_text("送信 40")
            shot(approver, "alert-done")
            approver.get_by_role("link", name="履歴", exact=True).click()
            row = approver.locator("tr", has_text="還付金の電話")
            expect(row).to_contain_text("editor1")
            expect(row).to_contain_text("approver1")
            expect(row).to_contain_text("40 / 40")
            shot(approver, "history")

            # ---- a scheduled alert cancelled before its time: nothing is sent
            compose(approver, "safety", "北区", "年末の防犯パトロールのお知らせ",
                    "年末は空き巣が増えます。外出のときは必ず鍵をかけましょう。")
            approver.get_by_label("日時を指定して予約").check()
            tomorrow = (dt.datetime.now(JST) + dt.timedelta(days=1)).strftime("%Y-%m-%dT10:00")
            approver.locator("#send_at").fill(tomorrow)
            approver.get_by_role("button", name="保存して承認を依頼").click()
            scheduled_url = approver.url
            second = sign_in("approver2")
            second.goto(scheduled_url)
            second.get_by_role("button", name="承認して送る").click()
            expect(second.locator(".state")).to_have_text("予約済み")
            shot(second, "alert-scheduled")
            second.get_by_role("button", name="送信を取り消す").click()
            expect(second.locator(".state")).to_have_text("取り消し")
            before = len(line.fake.deliveries)
            assert run_with_line(AlertDelivery, redis_client, app_settings,
                                 scheduled_url.rsplit("/", 1)[1]) == "cancelled"
            assert len(line.fake.deliveries) == before

            # ---- a two-variant campaign: created, approved, sent, results opened
            editor.get_by_role("link", name="キャンペーンを作る", exact=True).click()
            editor.locator("#name").fill("防犯アンケート 12月")
            editor.locator("#topics input[value='safety']").check()
            editor.locator("#a_title").fill("くらしの安全アンケート")
            editor.locator("#a_text").fill("相談先を知っていますか？ 1分で答えられます。")
            editor.locator("#b_title").fill("1分アンケートのお願い")
            editor.locator("#b_text").fill("周りの人を守るために、1分だけ教えてください。")
            editor.locator("#survey_url").fill("https://example.city.jp/survey")
            editor.locator("#q1").fill("事件にあったときの相談先を知っていますか？")
            editor.locator("#q1_options").fill("知っている、知らない")
            expect(editor.locator("#preview-variants .card")).to_have_count(2)
            expect(editor.locator("#reach")).to_contain_text("いま送ると届く人数：30人")
            shot(editor, "campaign-compose")
            editor.get_by_role("button", name="保存して承認を依頼").click()
            expect(editor.locator(".state")).to_have_text("承認待ち")
            approver.goto(editor.url)
            approver.get_by_role("button", name="承認して送る").click()
            expect(approver.locator(".state")).to_have_text(re.compile("送信待ち|予約済み"))
            campaign_id = editor.url.rsplit("/", 1)[1]
            # in the city's quiet hours a campaign waits for the morning: here the morning has come
            redis_client.hdel(campaign_key(campaign_id), "not_before")
            assert run_with_line(CampaignDelivery, redis_client, app_settings, campaign_id) == "done"
            approver.reload()
            expect(approver.locator(".state")).to_have_text("送信完了")
            results = approver.locator(".panel", has_text="結果")
            funnel = results.locator("table.counts").first
            expect(funnel.get_by_role("row", name=re.compile("^A "))).to_be_visible()
            expect(funnel.get_by_role("row", name=re.compile("^B "))).to_be_visible()
            delivered = [int(funnel.locator("tbody tr").nth(n).locator("td").first.inner_text()) for n in (0, 1)]
            assert sum(delivered) == 30
            expect(results).to_contain_text("比較の基準")
            expect(results).to_contain_text("A/Bの判定：クリック まだ差は分かりません")
            expect(approver.locator("img.chart")).to_be_visible()
            shot(approver, "campaign-results")

            # ---- an admin sees all of it in the audit log
            admin = sign_in("admin1")
            admin.get_by_role("link", name="監査ログ", exact=True).click()
            log = admin.locator("table.log")
            for who, what in (("editor1", "下書き作成"), ("approver1", "承認"), ("approver2", "取り消し"),
                              ("（システム）", "配信完了"), ("editor1", "ログイン")):
                expect(log.locator("tr", has_text=who).filter(has_text=what).first).to_be_visible()
            shot(admin, "audit")
            for name, path in (("staff", "/admin/staff"), ("content", "/admin/content")):
                admin.goto(console + path)
                shot(admin, name)
            # the editor cannot reach it
            editor.goto(console + "/admin/audit")
            expect(editor.get_by_role("heading", name="権限がありません")).to_be_visible()
        finally:
            browser.close()
