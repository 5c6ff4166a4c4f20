"""`vaultgate secrets add --type oauth2_client_credentials`: the client secret from stdin only."""

from __future__ import annotations

import json

import httpx

from functional.management.test_cli import run
from support import Vault
from support.injection import Tenant
from support.oauth_server import AuthServer


def test_cli_adds_a_client_credentials_secret_that_works(
    sqlite_vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    tenant = Tenant.create(sqlite_vault)
    result = run(
        sqlite_vault,
        *("secrets", "add", "--app", tenant.app_id, "--name", "m2m"),
        *("--type", "oauth2_client_credentials", "--host", auth.origin),
        *("--field", f"token_url={auth.token_url}", "--field", f"client_id={client.client_id}"),
        *("--field", "scopes=read", "--json"),
        stdin=client.client_secret + "\n",
    )
    created = json.loads(result.stdout)
    assert created["credential_type"] == "oauth2_client_credentials"
    assert client.client_secret not in result.stdout + result.stderr
    answer = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{created['grant_id']}/api/whoami",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["client_id"] == client.client_id
