"""The portal's custom-secret form offers the OAuth types sanely and stores one."""

from __future__ import annotations

import re

import httpx

from functional.oauth.conftest import client_credentials
from support import Vault
from support.injection import Tenant
from support.oauth_server import AuthServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _signed_in(vault: Vault) -> httpx.Client:
    client = httpx.Client(base_url=vault.base_url, trust_env=False, timeout=30)
    page = client.get("/portal/login")
    token = CSRF.search(page.text)
    assert token
    answer = client.post(
        "/portal/login",
        data={"csrf": token[1], "email": vault.portal_user, "password": vault.portal_password},
    )
    assert answer.status_code == 303, answer.text
    return client


def test_each_credential_field_is_one_input_and_settings_are_plain_text(
    sqlite_vault: Vault, auth: AuthServer
) -> None:
    tenant = Tenant.create(sqlite_vault)
    browser = _signed_in(sqlite_vault)
    try:
        page = browser.get("/portal/secrets/new/custom").text
        for name in ("token_url", "client_id", "client_secret", "refresh_token", "scopes"):
            inputs = re.findall(rf'<input [^>]*name="credential\.{name}"[^>]*>', page)
            assert len(inputs) == 1, (name, inputs)
        assert 'type="text"' in _input(page, "client_id")
        assert 'type="password"' in _input(page, "client_secret")
        assert 'type="password"' in _input(page, "refresh_token")
        assert '<option value="oauth2_client_credentials"' in page

        client = auth.add_client()
        body = client_credentials(auth, client)
        form = {
            "csrf": CSRF.findall(page)[-1],
            "app_id": tenant.app_id,
            "name": "m2m",
            "credential_type": body["credential_type"],
            "allowed_hosts": auth.origin,
            **{f"credential.{k}": v for k, v in body["credential"].items()},
        }
        answer = browser.post("/portal/secrets/new/custom", data=form)
    finally:
        browser.close()
    assert answer.status_code == 303, answer.text
    with sqlite_vault.admin() as admin:
        items = admin.get("/v1/secrets", params={"app_id": tenant.app_id}).json()["items"]
    assert [i["credential_type"] for i in items] == ["oauth2_client_credentials"]


def _input(page: str, name: str) -> str:
    found = re.search(rf'<input [^>]*name="credential\.{name}"[^>]*>', page)
    assert found
    return found[0]
