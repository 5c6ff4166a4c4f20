"""Helpers for Connect tests: an app with an OAuth app registered for ``github`` whose endpoints
point at the loopback authorization server (as a GitHub Enterprise install would), and the
browser's steps over plain HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from support.injection import Tenant
from support.oauth_authcode_server import AuthServer, Client
from support.servers import Upstream, Vault

CLIENT_SECRET = "cs-canary-connect-Zx81Qw"


@dataclass
class Connectable:
    tenant: Tenant
    auth: AuthServer
    api: Upstream
    oauth_app: dict[str, object]

    @property
    def vault(self) -> Vault:
        return self.tenant.vault


def register(vault: Vault, app_id: str, auth: AuthServer, api: Upstream) -> httpx.Response:
    with vault.admin() as admin:
        return admin.post(
            "/v1/oauth-apps",
            json={
                "app_id": app_id,
                "provider": "github",
                "template": "github",
                "client_id": "vault-client",
                "client_secret": CLIENT_SECRET,
                "scopes": ["repo", "read:user"],
                "authorize_url": f"{auth.origin}/authorize",
                "token_url": f"{auth.origin}/token",
                "revoke_url": f"{auth.origin}/revoke",
                "userinfo_url": f"{auth.origin}/userinfo",
                "allowed_hosts": [api.origin],
            },
        )


def connectable_app(vault: Vault, auth: AuthServer, api: Upstream) -> Connectable:
    tenant = Tenant.create(vault, f"app-{uuid.uuid4().hex[:8]}")
    auth.client = Client("vault-client", CLIENT_SECRET, f"{vault.base_url}/connect/callback")
    made = register(vault, tenant.app_id, auth, api)
    assert made.status_code == 201, made.text
    return Connectable(tenant, auth, api, made.json())


def authorize(connect_url: str) -> str:
    """What a browser does up to the provider's redirect: open the link, press Authorize.
    Returns the callback URL (with ``code`` and ``state``) without visiting it."""
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=30) as http:
        to_provider = http.get(connect_url)
        assert to_provider.status_code == 302, to_provider.text
        consent_url = to_provider.headers["location"]
        page = http.get(consent_url)
        assert page.status_code == 200 and "Authorize" in page.text, page.text
        back = http.post(consent_url, data={"confirm": "yes"})
        assert back.status_code == 302, back.text
        return str(back.headers["location"])


def visit(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=30) as http:
        return http.get(url)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
