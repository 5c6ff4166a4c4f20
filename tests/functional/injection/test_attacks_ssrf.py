"""A vault WITHOUT ``--allow-private-destinations``: no spelling of a refused address gets through.

The secret's allowed hosts deliberately list those addresses (an admin's mistake, or a template
pointed at an internal name), so the host check passes and only the address guard stands between
the credential and "evil", which listens on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.injection import Tenant, error_of, sdk_call

BEARER = "canary-ssrf-bearer-Vb61Hs"


@pytest.fixture(scope="module")
def strict_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    data = tmp_path_factory.mktemp("strict") / "data"
    with run_vault(data, extra_env={"VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": ""}) as server:
        yield server


@pytest.fixture(scope="module")
def trap() -> Iterator[Upstream]:
    """The module's evil server: every spelling below points at it."""
    with run_upstream() as server:
        yield server


def _spellings(port: int) -> dict[str, str]:
    return {
        "dotted": f"http://127.0.0.1:{port}/x",
        "decimal": f"http://2130706433:{port}/x",
        "hex": f"http://0x7f000001:{port}/x",
        "octal": f"http://0177.0.0.1:{port}/x",
        "short": f"http://127.1:{port}/x",
        "hex-parts": f"http://0x7f.0x0.0x0.0x1:{port}/x",
        "trailing-dot": f"http://127.0.0.1.:{port}/x",
        "ipv6-loopback": f"http://[::1]:{port}/x",
        "ipv4-mapped": f"http://[::ffff:127.0.0.1]:{port}/x",
        "ipv4-mapped-hex": f"http://[::ffff:7f00:1]:{port}/x",
        "unspecified": f"http://0.0.0.0:{port}/x",
        "resolves-to-loopback": f"http://localhost:{port}/x",
        "resolves-to-loopback-upper": f"http://LOCALHOST.:{port}/x",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "metadata-octal": "http://0251.0376.0251.0376/latest/meta-data/",
        "metadata-decimal": "http://2852039166/latest/meta-data/",
        "metadata-mapped": "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "private-10": "http://10.0.0.1/x",
        "cgnat": "http://100.64.0.1/x",
        "nat64-embedded": "http://[64:ff9b::7f00:1]/x",
    }


SPELLINGS = list(_spellings(1))


@pytest.fixture(scope="module")
def strict_tenant(strict_vault: Vault) -> Tenant:
    return Tenant.create(strict_vault)


@pytest.fixture(scope="module")
def ssrf_grant(strict_tenant: Tenant, trap: Upstream) -> str:
    hosts = sorted(
        {url.split("/")[2].rstrip(".").lower() for url in _spellings(trap.port).values()}
    )
    return strict_tenant.store(
        {"credential_type": "bearer", "credential": {"token": BEARER}},
        [f"http://{host}" for host in hosts],
    )


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_proxy_mode_refuses_every_spelling_of_a_refused_address(
    spelling: str, strict_vault: Vault, strict_tenant: Tenant, ssrf_grant: str, trap: Upstream
) -> None:
    url = _spellings(trap.port)[spelling]
    response = sdk_call(
        strict_vault,
        strict_tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": ssrf_grant},
    )
    assert response.status_code == 422, response.text
    assert error_of(response) == "blocked_destination"
    assert BEARER not in response.text
    assert trap.requests == []


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_retrieve_mode_does_not_release_the_credential_for_a_refused_address(
    spelling: str, strict_vault: Vault, strict_tenant: Tenant, ssrf_grant: str, trap: Upstream
) -> None:
    """The SDK would connect itself, so the vault must vet the address before releasing."""
    url = _spellings(trap.port)[spelling]
    payload = {"grant_id": ssrf_grant, "request": {"method": "GET", "url": url}}
    response = sdk_call(strict_vault, strict_tenant.key, "/sdk/token", payload)
    assert response.status_code == 422, response.text
    assert error_of(response) == "blocked_destination"
    assert BEARER not in response.text
    assert trap.requests == []


@pytest.mark.parametrize("spelling", ["dotted", "resolves-to-loopback", "ipv4-mapped"])
def test_transparent_proxy_refuses_a_refused_address(
    spelling: str, strict_vault: Vault, strict_tenant: Tenant, ssrf_grant: str, trap: Upstream
) -> None:
    origin = _spellings(trap.port)[spelling].removesuffix("/x")
    response = httpx.get(
        f"{strict_vault.base_url}/proxy/{ssrf_grant}/x",
        headers={"Authorization": f"Bearer {strict_tenant.key}", "X-Vaultgate-Target": origin},
        trust_env=False,
    )
    assert response.status_code == 422, response.text
    assert error_of(response) == "blocked_destination"
    assert trap.requests == []


def test_the_same_grant_works_where_private_destinations_are_allowed(
    tmp_path: Path, trap: Upstream
) -> None:
    """The refusals above come from the guard, not from a broken grant."""
    with run_vault(tmp_path / "data") as vault:
        tenant = Tenant.create(vault)
        grant = tenant.store(
            {"credential_type": "bearer", "credential": {"token": BEARER}},
            [f"http://localhost:{trap.port}"],
        )
        url = f"http://localhost:{trap.port}/x"
        response = sdk_call(
            vault, tenant.key, "/sdk/proxy", {"method": "GET", "url": url, "grant_id": grant}
        )
    assert response.status_code == 200, response.text
    assert trap.last().headers["authorization"] == f"Bearer {BEARER}"
    trap.requests.clear()
