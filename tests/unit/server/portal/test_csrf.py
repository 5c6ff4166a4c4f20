"""Every form needs this session's CSRF token; without it nothing changes."""

from __future__ import annotations

import pytest


def test_valid_token_is_accepted(signed_in):
    answer = signed_in.post("/portal/apps", {"name": "payments"})
    assert answer.status_code == 303
    assert [a["name"] for a in signed_in.rt.keys.list_apps()] == ["payments"]


@pytest.mark.parametrize("token", [None, "", "0" * 64, "forged-token"])
def test_missing_or_forged_token_is_refused(signed_in, token):
    data = {"name": "payments"} if token is None else {"name": "payments", "csrf": token}
    answer = signed_in.client.post("/portal/apps", data=data)
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert signed_in.rt.keys.list_apps() == []


def test_token_of_another_session_is_refused(portal):
    stolen = portal.csrf()  # an anonymous session's token, as an attacker could obtain one
    portal.login()
    answer = portal.client.post("/portal/apps", data={"name": "payments", "csrf": stolen})
    assert answer.status_code == 403
    assert portal.rt.keys.list_apps() == []


def test_sign_in_form_needs_a_token_too(portal):
    data = {"email": portal.email, "password": portal.password}
    assert portal.client.post("/portal/login", data=data).status_code == 403
    assert portal.client.get("/portal/apps").status_code == 303


def test_destructive_forms_need_a_token(signed_in):
    app_id = signed_in.make_app()
    _, key = signed_in.rt.keys.create_key("app", "k", _actor(), app_id=app_id)
    answer = signed_in.client.post(f"/portal/keys/{key['id']}/revoke", data={"app_id": app_id})
    assert answer.status_code == 403
    assert signed_in.rt.keys.list_keys(app_id)[0]["revoked_at"] is None


def _actor():
    from vaultgate.server.auth.services import Actor

    return Actor(portal_user="fixture")
