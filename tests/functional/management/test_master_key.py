"""Master key rotation re-wraps every data key online; an interrupted run finishes when rerun."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import httpx

from support import Upstream, Vault

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]


def _key_ids(vault: Vault) -> set[str]:
    with sqlite3.connect(vault.data_dir / "vaultgate.db") as db:
        rows = db.execute("SELECT master_key_id FROM secret_versions WHERE wrapped_key IS NOT NULL")
        return {r[0] for r in rows}


def _use(vault: Vault, grant: str, key: str) -> int:
    return httpx.get(
        f"{vault.base_url}/proxy/{grant}/ping",
        trust_env=False,
        headers={"Authorization": f"Bearer {key}"},
    ).status_code


def test_rotate_rewraps_while_serving(sqlite_vault: Vault, upstream: Upstream) -> None:
    app_id, key = sqlite_vault.make_app_key()
    grants = []
    with sqlite_vault.admin() as admin:
        for i in range(5):
            created = admin.post(
                "/v1/secrets",
                json={
                    "app_id": app_id,
                    "name": f"s{i}",
                    "credential_type": "bearer",
                    "credential": {"token": f"tok-{i}"},
                    "allowed_hosts": [upstream.origin],
                },
            )
            grants.append(created.json()["grant_id"])
    old = _key_ids(sqlite_vault)
    assert len(old) == 1
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(sqlite_vault.data_dir)}
    out = subprocess.run(
        [*VAULTGATE, "master-key", "rotate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert "re-wrapped 5 data keys" in out
    new = _key_ids(sqlite_vault)
    assert len(new) == 1 and new != old
    keyfile = json.loads((sqlite_vault.data_dir / "master.key").read_text())
    assert len(keyfile["keys"]) == 2
    # The running server meets data keys under a master key it has not loaded yet.
    for grant in grants:
        assert _use(sqlite_vault, grant, key) == 200
    assert [r.headers["authorization"] for r in upstream.requests] == [
        f"Bearer tok-{i}" for i in range(5)
    ]


def test_an_interrupted_rotation_finishes_when_run_again(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    app_id, key = sqlite_vault.make_app_key()
    with sqlite_vault.admin() as admin:
        grant = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "s",
                "credential_type": "bearer",
                "credential": {"token": "tok"},
                "allowed_hosts": [upstream.origin],
            },
        ).json()["grant_id"]
        admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "t",
                "credential_type": "bearer",
                "credential": {"token": "tok2"},
                "allowed_hosts": [upstream.origin],
            },
        )
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(sqlite_vault.data_dir)}
    # Simulate a kill after the key was added but before any re-wrap: add the key only.
    from vaultgate.server.crypto import FileKeyProvider

    FileKeyProvider.add_key(sqlite_vault.data_dir / "master.key")
    assert _use(sqlite_vault, grant, key) == 200
    out = subprocess.run(
        [*VAULTGATE, "master-key", "rotate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert "added master key" not in out  # it finished the job instead of adding another key
    assert len(json.loads((sqlite_vault.data_dir / "master.key").read_text())["keys"]) == 2
    assert len(_key_ids(sqlite_vault)) == 1
    assert _use(sqlite_vault, grant, key) == 200
