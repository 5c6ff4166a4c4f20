"""A canary secret value never reaches the database file, the logs, or any API response."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from support import Upstream, Vault

CANARY = "sk-canary-leak-9d41e7a2c6"


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


def test_canary_stays_out_of_db_logs_and_responses(
    sqlite_vault: Vault, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app_id, key = sqlite_vault.make_app_key()
    seen: list[str] = []
    with sqlite_vault.admin() as admin:
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "canary",
                "credential_type": "api_key",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
                "injection": {"header": "X-Secret", "format": "Key {token}"},
            },
        )
        assert created.status_code == 201
        seen.append(created.text)
        grant = created.json()["grant_id"]
        secret = created.json()["secret_id"]
        for path in (
            f"/v1/secrets/{secret}",
            f"/v1/secrets?app_id={app_id}",
            f"/v1/grants/{grant}",
            "/v1/audit",
            "/v1/audit/export",
        ):
            seen.append(admin.get(path).text)
        # A failed rotation (bad field) must not echo the value it was given.
        bad = admin.post(
            f"/v1/secrets/{secret}/rotate", json={"credential": {"token": CANARY + "\n"}}
        )
        assert bad.status_code == 422
        seen.append(bad.text)
        bad = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "x",
                "credential_type": "bearer",
                "credential": {"token": CANARY, "oops": CANARY},
                "allowed_hosts": ["a.example"],
            },
        )
        seen.append(bad.text)
    used = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{grant}/x",
        trust_env=False,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert used.status_code == 200
    assert upstream.last().headers["x-secret"] == f"Key {CANARY}"
    seen.append(str(used.headers))
    denied = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{grant}/x",
        trust_env=False,
        headers={"Authorization": f"Bearer {key}", "X-Vaultgate-Target": "https://evil.example"},
    )
    assert denied.status_code == 422
    seen.append(denied.text)

    for text in seen:
        assert CANARY not in text
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in repr(record.args)
    assert CANARY.encode() not in _all_bytes(sqlite_vault.data_dir)
