"""Master key rotation re-wraps every data key online (OAuth client secrets too, not only secret
versions); an interrupted run finishes when rerun."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import httpx

from support import Upstream, Vault
from vaultgate.server.crypto import Barrier, FileKeyProvider, Keyring
from vaultgate.server.oauth import sealing as oauth_sealing

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]
CLIENT_SECRET = "canary-rotate-client-secret-Px3"


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


def _rotate(vault: Vault) -> str:
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(vault.data_dir)}
    return subprocess.run(
        [*VAULTGATE, "master-key", "rotate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout


def _register_oauth_app(vault: Vault, app_id: str) -> str:
    with vault.admin() as admin:
        made = admin.post(
            "/v1/oauth-apps",
            json={
                "app_id": app_id,
                "provider": "google",
                "template": "google",
                "client_id": "cid",
                "client_secret": CLIENT_SECRET,
            },
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _assert_client_secret_under_newest_key_only(vault: Vault, oauth_app_id: str) -> str:
    """The newest key's id, after proving the client secret opens with that key alone."""
    newest = FileKeyProvider(vault.data_dir / "master.key").load().keys[-1]
    with sqlite3.connect(vault.data_dir / "vaultgate.db") as db:
        (blob,) = db.execute(
            "SELECT client_secret FROM oauth_apps WHERE id = ?", (oauth_app_id,)
        ).fetchone()
    assert oauth_sealing.key_id_of(blob) == newest.key_id
    only_newest = Barrier(Keyring([newest], active_id=newest.key_id))
    context = ("oauth_apps", oauth_app_id, "client_secret")
    assert oauth_sealing.open_sealed(only_newest, blob, *context) == CLIENT_SECRET.encode()
    return newest.key_id


def test_rotate_moves_an_oauth_client_secret_and_counts_it(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    app_id, _ = sqlite_vault.make_app_key()
    with sqlite_vault.admin() as admin:
        admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "s",
                "credential_type": "bearer",
                "credential": {"token": "tok"},
                "allowed_hosts": [upstream.origin],
            },
        )
    oauth_app_id = _register_oauth_app(sqlite_vault, app_id)
    out = _rotate(sqlite_vault)
    newest = _assert_client_secret_under_newest_key_only(sqlite_vault, oauth_app_id)
    assert f"re-wrapped 2 data keys; all 2 now under {newest}" in out
    assert CLIENT_SECRET not in out


def test_a_rerun_finishes_a_rotation_whose_only_sealed_value_is_an_oauth_client_secret(
    sqlite_vault: Vault,
) -> None:
    app_id, _ = sqlite_vault.make_app_key()
    oauth_app_id = _register_oauth_app(sqlite_vault, app_id)
    # Killed after the key was added, before any re-wrap: no secret version, one client secret.
    FileKeyProvider.add_key(sqlite_vault.data_dir / "master.key")
    out = _rotate(sqlite_vault)
    assert "added master key" not in out  # the client secret still pending: no third key
    assert len(json.loads((sqlite_vault.data_dir / "master.key").read_text())["keys"]) == 2
    newest = _assert_client_secret_under_newest_key_only(sqlite_vault, oauth_app_id)
    assert f"re-wrapped 1 data keys; all 1 now under {newest}" in out


def test_a_value_that_does_not_open_is_named_and_the_rest_still_move(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    app_id, key = sqlite_vault.make_app_key()
    made = {}
    with sqlite_vault.admin() as admin:
        for name in ("good", "bad"):
            made[name] = admin.post(
                "/v1/secrets",
                json={
                    "app_id": app_id,
                    "name": name,
                    "credential_type": "bearer",
                    "credential": {"token": f"canary-{name}-Wd62"},
                    "allowed_hosts": [upstream.origin],
                },
            ).json()
    with sqlite3.connect(sqlite_vault.data_dir / "vaultgate.db") as db:
        bad = made["bad"]["secret_id"]
        (wrapped,) = db.execute(
            "SELECT wrapped_key FROM secret_versions WHERE secret_id = ?", (bad,)
        ).fetchone()
        broken = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])  # its tag no longer checks
        db.execute("UPDATE secret_versions SET wrapped_key = ? WHERE secret_id = ?", (broken, bad))
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(sqlite_vault.data_dir)}
    done = subprocess.run(
        [*VAULTGATE, "master-key", "rotate"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "1 sealed values do not open with this key set" in done.stderr
    assert f"secret_versions.wrapped_key (secret_id={bad}, version=1)" in done.stderr
    assert "Traceback" not in done.stderr and "canary-" not in done.stderr + done.stdout
    newest = FileKeyProvider(sqlite_vault.data_dir / "master.key").load().keys[-1].key_id
    with sqlite3.connect(sqlite_vault.data_dir / "vaultgate.db") as db:
        rows = dict(db.execute("SELECT secret_id, master_key_id FROM secret_versions"))
    assert rows[made["good"]["secret_id"]] == newest  # the twin: every other value moved
    assert rows[bad] != newest
    assert _use(sqlite_vault, made["good"]["grant_id"], key) == 200
