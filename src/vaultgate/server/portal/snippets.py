"""The ready-to-paste code shown with a grant: our SDK, and curl through the transparent proxy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snippets:
    sdk: str
    curl: str


def example_origin(entry: str) -> str:
    """An origin a person can read for an allowed-host entry (``*.x.com`` becomes api.x.com)."""
    if "://" in entry:
        return entry.rstrip("/")
    host = "api." + entry[2:] if entry.startswith("*.") else entry
    return f"https://{host}"


def snippets(grant_id: str, hosts: list[str], vault_url: str) -> Snippets:
    origin = example_origin(hosts[0]) if hosts else "https://api.example.com"
    vault_url = vault_url.rstrip("/")
    sdk = f"""import asyncio
import os

from vaultgate import AlterVault, HttpMethod


async def main() -> None:
    async with AlterVault(
        api_key=os.environ["VAULTGATE_APP_KEY"],
        base_url="{vault_url}",
        caller="my-service",
    ) as vault:
        response = await vault.request(
            HttpMethod.GET,
            "{origin}/",
            grant_id="{grant_id}",
            reason="describe why this call is made",
        )
        print(response.status_code)


asyncio.run(main())
"""
    curl = (
        f'curl -H "Authorization: Bearer $VAULTGATE_APP_KEY" \\\n     {vault_url}/proxy/{grant_id}/'
    )
    return Snippets(sdk=sdk, curl=curl)
