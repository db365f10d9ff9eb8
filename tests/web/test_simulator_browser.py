"""/dev/chat in a real headless Chromium, against `python -m bot serve` (gunicorn, local mode).

Every tap and message goes through the signed /callback path and the fake LINE
API; the screenshot is kept under test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from bot.settings import REPO_ROOT

# Chromium against `python -m bot serve` in another process: out of the quick loop on both counts.
pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(redis_url, redis_client, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    env.update(REDIS_URL=redis_url, BOT_DATA_DIR=str(tmp_path), PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=15)


def test_dev_chat_in_headless_chromium(server, redis_url):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/test.sh installs it)"
    # CI shares two cores with other work: give each expectation time to settle
    expect.set_options(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 420, "height": 860})
        try:
            page.goto(server + "/dev/chat")
            # the page sends a follow event on load: the welcome and the language step
            expect(page.locator(".row.bot .bubble").first).to_contain_text("友だち追加ありがとうございます")
            page.locator(".chip", has_text="日本語").first.click()
            expect(page.locator(".row.user .bubble").last).to_have_text("日本語")
            expect(page.locator(".chip", has_text="中央区")).to_be_visible()
            page.locator(".chip", has_text="中央区").click()
            page.locator(".chip", has_text="詐欺・闇バイト").click()
            expect(page.locator(".chip", has_text="✓ 詐欺・闇バイト")).to_be_visible()
            page.locator(".chip", has_text="完了").click()
            expect(page.locator(".row.bot .bubble").last).to_contain_text("中央区")

            page.fill("#text", "息子を名乗る電話でお金を要求された")
            page.click("#send")
            expect(page.locator(".row.bot .bubble", has_text="電話で『お金』詐欺")).to_be_visible()
            call = page.locator(".card .btn.primary").first
            expect(call).to_contain_text("電話する")
            page.screenshot(path=str(ARTIFACTS / "dev-chat-fraud.png"), full_page=True)

            # a fire told in a second sentence: the 119 card first, the fraud topic one tap away
            page.fill("#text", "詐欺の電話があった。ところで隣の家から煙が出てる")
            page.click("#send")
            expect(page.locator(".row.bot .bubble", has_text="すぐ119番")).to_be_visible()
            expect(page.locator(".card .btn.primary", has_text="119").last).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dev-chat-crisis.png"), full_page=True)
            page.locator(".chip", has_text="電話・訪問の詐欺").click()
            expect(page.locator(".row.bot .bubble", has_text="電話で『お金』詐欺").last).to_be_visible()

            page.fill("#text", "夫に殴られる")
            page.click("#send")
            expect(page.locator(".row.bot .bubble", has_text="あなたは悪くありません")).to_be_visible()
            expect(page.locator(".card", has_text="このトークについて")).to_be_visible()
            page.locator(".chip", has_text="画面を切り替える").click()
            expect(page.locator(".card").last).to_contain_text("くらしのメモ")
            page.screenshot(path=str(ARTIFACTS / "dev-chat.png"), full_page=True)

            # Staff send an alert and a worker delivers it into this bot's fake LINE API
            # (the commands `serve` prints): the card appears without the resident writing.
            env = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
            env.update(REDIS_URL=redis_url, LINE_API_BASE_URL=server + "/fake-line")
            for args in (["alert", "send", "--topic", "fraud", "--areas", "chuo", "--title", "「警察官」を名乗る電話に注意",
                          "--body", "警察官を名乗り、口座が犯罪に使われていると言ってカードを求める電話。", "--now"],
                         ["worker", "--burst"]):
                done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO_ROOT, env=env,
                                      capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
            expect(page.locator(".card", has_text="「警察官」を名乗る電話に注意")).to_be_visible()
        finally:
            browser.close()
    assert (ARTIFACTS / "dev-chat.png").stat().st_size > 10_000
