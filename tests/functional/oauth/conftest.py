"""A real authorization server per test (Authlib on Flask), and OAuth secrets stored in a vault."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support import Vault
from support.injection import Tenant
from support.oauth_server import AuthServer, Client, run_auth_server


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with run_auth_server() as server:
        yield server


def client_credentials(auth: AuthServer, client: Client, **extra: str) -> dict[str, Any]:
    return {
        "credential_type": "oauth2_client_credentials",
        "credential": {
            "token_url": auth.token_url,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "scopes": "read",
            **extra,
        },
    }


def refresh_grant(auth: AuthServer, client: Client, refresh: str, **extra: str) -> dict[str, Any]:
    """A refresh-token secret whose initial access token expired long ago."""
    return {
        "credential_type": "oauth2_refresh_token",
        "credential": {
            "token_url": auth.token_url,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "refresh_token": refresh,
            "access_token": f"stale-{uuid.uuid4().hex}",
            "expires_at": str(int(time.time()) - 3600),
            **extra,
        },
    }


def store(vault: Vault, tenant: Tenant, body: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    payload = {"app_id": tenant.app_id, "name": f"oauth-{uuid.uuid4().hex[:10]}", **body}
    payload["allowed_hosts"] = hosts
    with vault.admin() as admin:
        created = admin.post("/v1/secrets", json=payload)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


@pytest.fixture
def official_client(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official client (alter-sdk) pointed at the test's vault."""
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
