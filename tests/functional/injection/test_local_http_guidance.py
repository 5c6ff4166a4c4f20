"""Calling a local plain-http service: each refusal says what to change, and its twin goes through.

The two steps a newcomer meets (README "Local and private upstreams"): an ``http://`` origin in
the grant's hosts (a bare host means https only), and ``--allow-private-destinations`` on the
server for a loopback or private address. Nothing reaches the upstream while either is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Upstream, Vault, run_vault
from support.injection import Tenant, error_of, sdk_call
from vaultgate import AlterVault, BlockedDestinationError

TOKEN = "canary-local-http-Qe4u9"


def bearer() -> dict[str, object]:
    return {"credential_type": "bearer", "credential": {"token": TOKEN}}


@pytest.fixture
def strict_vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault started without --allow-private-destinations."""
    with run_vault(
        tmp_path / "strict", extra_env={"VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": ""}
    ) as v:
        yield v


def test_a_bare_host_grant_says_the_scheme_differs_and_how_to_allow_http(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault)
    https_only = tenant.store(bearer(), [f"127.0.0.1:{upstream.port}"])
    url = f"{upstream.origin}/x"
    response = sdk_call(
        sqlite_vault,
        tenant.key,
        "/sdk/token",
        {"grant_id": https_only, "request": {"method": "GET", "url": url}},
    )
    assert response.status_code == 422 and error_of(response) == "blocked_destination"
    message = response.json()["detail"]["message"]
    assert message == (
        f"{upstream.origin} is not allowed; the grant allows https://127.0.0.1:{upstream.port} "
        f"(a bare --host means https only) — add an http:// origin with --host {upstream.origin}"
    )
    assert TOKEN not in response.text

    proxied = sdk_call(
        sqlite_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": https_only},
    )
    assert proxied.status_code == 422
    assert f"--host {upstream.origin}" in proxied.json()["detail"]["message"]
    assert upstream.requests == []

    # The twin: the same service allowed by its http:// origin.
    http_grant = tenant.store(bearer(), [upstream.origin])
    allowed = sdk_call(
        sqlite_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": http_grant},
    )
    assert allowed.status_code == 200, allowed.text
    assert upstream.last().headers["authorization"] == f"Bearer {TOKEN}"


async def test_our_sdk_shows_the_same_guidance(sqlite_vault: Vault, upstream: Upstream) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = tenant.store(bearer(), [f"127.0.0.1:{upstream.port}"])
    async with AlterVault(api_key=tenant.key, base_url=sqlite_vault.base_url) as client:
        with pytest.raises(BlockedDestinationError) as caught:
            await client.request("GET", f"{upstream.origin}/x", grant_id=grant)
    assert f"add an http:// origin with --host {upstream.origin}" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert upstream.requests == []


def test_an_unrelated_host_is_not_told_about_the_grants_hosts(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = tenant.store(bearer(), [upstream.origin])
    response = sdk_call(
        sqlite_vault,
        tenant.key,
        "/sdk/token",
        {"grant_id": grant, "request": {"method": "GET", "url": "http://other.test/x"}},
    )
    assert response.status_code == 422
    message = response.json()["detail"]["message"]
    assert message == "http://other.test is not an allowed destination of this grant"
    assert str(upstream.port) not in message


def test_a_private_destination_names_the_server_flag(
    strict_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(strict_vault)
    grant = tenant.store(bearer(), [upstream.origin])
    url = f"{upstream.origin}/x"
    for path, payload in (
        ("/sdk/proxy", {"method": "GET", "url": url, "grant_id": grant}),
        ("/sdk/token", {"grant_id": grant, "request": {"method": "GET", "url": url}}),
    ):
        response = sdk_call(strict_vault, tenant.key, path, payload)
        assert response.status_code == 422 and error_of(response) == "blocked_destination"
        message = response.json()["detail"]["message"]
        assert "--allow-private-destinations" in message, (path, message)
        assert "127.0.0.1/32" in message  # the example, not the address asked for
        assert str(upstream.port) not in message and TOKEN not in response.text
    assert upstream.requests == []
