"""Sign-in: one answer for every wrong credential, throttling, idle timeout, sign-out."""

from __future__ import annotations

import base64
import json
import re

import sqlalchemy as sa

from vaultgate.server.portal.sessions import COOKIE, IDLE_TIMEOUT
from vaultgate.server.portal.throttle import MAX_PER_EMAIL
from vaultgate.server.storage.tables import audit_events


def _page_text(html: str) -> str:
    """The page with what legitimately differs removed: the CSRF token and the echoed email."""
    html = re.sub(r'name="csrf" value="[^"]+"', "", html)
    return re.sub(r'name="email" type="email" autocomplete="username" value="[^"]*"', "", html)


def test_pages_need_a_session(portal):
    answer = portal.client.get("/portal/secrets")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/portal/login?next=/portal/secrets")


def test_sign_in_sets_a_hardened_cookie_and_opens_the_portal(portal):
    answer = portal.login()
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/secrets"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/portal" in cookie
    page = portal.client.get("/portal/secrets")
    assert page.status_code == 200
    assert portal.email in page.text


def test_wrong_password_and_unknown_user_get_the_same_answer(portal):
    wrong = portal.login(password="not-the-password-at-all")
    unknown = portal.login(email="nobody@example.com", password="not-the-password-at-all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert _page_text(wrong.text) == _page_text(unknown.text)
    assert "not-the-password-at-all" not in wrong.text
    assert COOKIE not in portal.client.get("/portal/secrets").headers.get("location", COOKIE)


def test_failed_and_successful_sign_ins_are_audited(portal):
    portal.login(password="wrong-password-123")
    portal.login()
    with portal.rt.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.event, audit_events.c.portal_user)
            .where(audit_events.c.event.like("portal:%"))
            .order_by(audit_events.c.seq)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("portal:login_failed", portal.email),
        ("portal:login", portal.email),
    ]


def test_sign_in_is_throttled_after_repeated_failures(portal):
    for _ in range(MAX_PER_EMAIL):
        assert portal.login(password="wrong-password-123").status_code == 401
    blocked = portal.login()  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many sign-in attempts" in blocked.text
    portal.clock.advance(minutes=16)
    assert portal.login().status_code == 303


def test_throttle_counts_per_email(portal):
    for _ in range(MAX_PER_EMAIL):
        portal.login(email="someone-else@example.com", password="wrong-password-123")
    assert portal.login().status_code == 303


def test_idle_session_expires_and_redirects_to_sign_in(signed_in):
    signed_in.clock.advance(seconds=IDLE_TIMEOUT + 1)
    answer = signed_in.client.get("/portal/apps")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login?next=/portal/apps&expired=1"
    login = signed_in.client.get(answer.headers["location"])
    assert "Your session expired" in login.text


def test_activity_keeps_a_session_alive(signed_in):
    for _ in range(3):
        signed_in.clock.advance(seconds=IDLE_TIMEOUT - 60)
        assert signed_in.client.get("/portal/apps").status_code == 200


def test_forged_cookie_is_not_a_session(signed_in):
    genuine = signed_in.client.cookies.get(COOKIE)
    now = signed_in.clock.now.timestamp()
    claim = json.dumps({"n": "x", "u": signed_in.email, "s": now, "t": now}).encode()
    forged = base64.urlsafe_b64encode(claim).decode().rstrip("=") + "." + genuine.split(".")[-1]
    signed_in.client.cookies.clear()
    signed_in.client.cookies.set(COOKIE, forged)
    assert signed_in.client.get("/portal/apps").status_code == 303
    signed_in.client.cookies.clear()
    signed_in.client.cookies.set(COOKIE, genuine)
    assert signed_in.client.get("/portal/apps").status_code == 200


def test_sign_out_ends_the_session(signed_in):
    answer = signed_in.post("/portal/logout", {})
    assert answer.status_code == 303
    assert signed_in.client.get("/portal/apps").status_code == 303


def test_next_never_leaves_the_portal(portal):
    data = {
        "csrf": portal.csrf(),
        "email": portal.email,
        "password": portal.password,
        "next": "https://evil.example/phish",
    }
    answer = portal.client.post("/portal/login", data=data)
    assert answer.headers["location"] == "/portal/secrets"
    portal.post("/portal/logout", {})
    data = {**data, "csrf": portal.csrf(), "next": "/portal/audit"}
    assert portal.client.post("/portal/login", data=data).headers["location"] == "/portal/audit"
