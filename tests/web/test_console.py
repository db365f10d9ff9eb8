"""The console and the staff API refuse who they must: anonymous users, wrong roles, forms
without a CSRF token, a sixth wrong password in a minute, and an approver's own draft."""

from __future__ import annotations

import re

import pytest

from tests.broadcast.test_alerts import fraud_alert

PAGES = ["/admin/", "/admin/alerts/new", "/admin/campaigns/new", "/admin/history", "/admin/content",
         "/admin/audit", "/admin/audit.csv", "/admin/staff"]
ADMIN_ONLY = ["/admin/audit", "/admin/audit.csv", "/admin/staff"]
API = [("post", "/api/alerts"), ("post", "/api/alerts/preview"), ("get", "/api/alerts"), ("get", "/api/alerts/x"),
       ("post", "/api/alerts/x/approve"), ("post", "/api/alerts/x/reject"), ("post", "/api/alerts/x/cancel"),
       ("post", "/api/campaigns"), ("get", "/api/campaigns"), ("post", "/api/campaigns/x/approve"),
       ("get", "/api/campaigns/x/stats"), ("get", "/api/audit")]


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def login(client, name: str):
    token = csrf(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"csrf_token": token, "name": name, "password": f"password-{name}"})


def test_anonymous_users_get_nothing(client, staff_auth):
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302 and response.location.startswith("/admin/login"), page
        assert not response.location.endswith("%3F"), response.location  # no stray "?" in next
    for method, path in API:
        response = getattr(client, method)(path, json={})
        assert response.status_code == 401 and "トークン" in response.json["message"], path


def test_wrong_roles_are_refused(app, client, staff_auth):
    assert login(client, "editor1").status_code == 302
    for page in ADMIN_ONLY:
        assert client.get(page).status_code == 403, page
    for page in set(PAGES) - set(ADMIN_ONLY):
        assert client.get(page).status_code == 200, page
    editor = staff_auth["editor1"]
    created = app.test_client().post("/api/alerts", json=fraud_alert(), headers=editor).json
    api = app.test_client()
    assert api.get("/api/audit", headers=editor).status_code == 403
    assert api.get("/api/audit", headers=staff_auth["approver1"]).status_code == 403
    assert api.get("/api/audit", headers=staff_auth["admin1"]).status_code == 200
    for action in ("approve", "send_alone"):  # (an editor may discard a draft: "cancel" before approval)
        refused = client.post(f"/admin/alert/{created['id']}/{action}",
                              data={"csrf_token": csrf(client.get("/admin/history").get_data(as_text=True))})
        assert refused.status_code == 403 and "承認者" in refused.get_data(as_text=True), action
    assert api.post(f"/api/alerts/{created['id']}/reject", json={"reason": "x"}, headers=editor).status_code == 403
    assert api.get(f"/api/alerts/{created['id']}", headers=editor).json["state"] == "awaiting_approval"


def test_forms_without_a_csrf_token_are_refused(client, staff_auth):
    bare = client.post("/admin/login", data={"name": "approver1", "password": "password-approver1"})
    assert bare.status_code == 400 and "有効期限" in bare.get_data(as_text=True)
    assert login(client, "approver1").status_code == 302
    draft = client.post("/admin/alerts/new", data={"topic": "fraud", "areas": ["chuo"], "title": "t", "body": "b",
                                                   "timing": "asap", "desk": ""})
    assert draft.status_code == 400
    assert client.post("/admin/logout").status_code == 400


def test_the_login_throttle(client, staff_auth):
    token = csrf(client.get("/admin/login").get_data(as_text=True))
    codes = [client.post("/admin/login", data={"csrf_token": token, "name": "admin1", "password": "wrong"}).status_code
             for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # even the right password waits: the throttle is per address, not per guess
    right = client.post("/admin/login", data={"csrf_token": token, "name": "admin1", "password": "password-admin1"})
    assert right.status_code == 429


def test_nobody_approves_their_own_draft_in_the_console(client, staff_auth):
    login(client, "approver1")
    form_page = client.get("/admin/alerts/new").get_data(as_text=True)
    created = client.post("/admin/alerts/new", data={
        "csrf_token": csrf(form_page), "topic": "fraud", "areas": ["chuo"], "title": "還付金の電話に注意",
        "body": "市役所を名乗りATMへ誘導する電話。", "timing": "asap", "desk": ""})
    assert created.status_code == 302
    record = created.location
    page = client.get(record).get_data(as_text=True)
    assert "自分で作成したものは承認できません" in page and "承認して送る" not in page
    refused = client.post(record + "/approve", data={"csrf_token": csrf(page)})
    assert refused.status_code == 403 and "自分で作成" in refused.get_data(as_text=True)


def test_idle_sessions_end_and_pages_carry_security_headers(app, client, staff_auth):
    login(client, "editor1")
    page = client.get("/admin/")
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY" and "default-src 'self'" in page.headers["Content-Security-Policy"]
    cookie = page.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with client.session_transaction() as session:
        session["seen"] -= app.extensions["bot"].settings.session_minutes * 60 + 1
    expired = client.get("/admin/")
    assert expired.status_code == 302 and "/admin/login" in expired.location


@pytest.mark.parametrize("body", [b"x" * (3 * 1024 * 1024)])
def test_a_huge_body_gets_a_json_413(client, staff_auth, body):
    response = client.post("/api/alerts", data=body, headers={**staff_auth["editor1"],
                                                              "Content-Type": "application/json"})
    assert response.status_code == 413 and "大きすぎ" in response.json["message"]
