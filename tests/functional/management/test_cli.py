"""The CLI driven end to end, as a subprocess, against a running vault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import Upstream, Vault

CANARY = "sk-canary-cli-5b2e81d0"
VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]


def run(
    vault: Vault,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VAULTGATE_URL": vault.base_url,
        "VAULTGATE_ADMIN_KEY": vault.admin_key,
        **(extra_env or {}),
    }
    result = subprocess.run(
        [*VAULTGATE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_the_cli_manages_apps_keys_secrets_and_grants(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    app = json.loads(run(sqlite_vault, "apps", "create", "cli-app", "--json").stdout)
    assert "cli-app" in run(sqlite_vault, "apps", "list").stdout
    key = json.loads(run(sqlite_vault, "keys", "create", app["id"], "--name", "k", "--json").stdout)
    assert key["api_key"].startswith("alter_key_")
    listed = run(sqlite_vault, "keys", "list", app["id"]).stdout
    assert key["api_key"] not in listed and key["hint"] in listed

    added = run(
        sqlite_vault,
        "secrets",
        "add",
        "--app",
        app["id"],
        "--name",
        "up",
        "--type",
        "bearer",
        "--host",
        upstream.origin,
        "--stdin",
        "--json",
        stdin=CANARY + "\n",
    )
    secret = json.loads(added.stdout)
    assert CANARY not in added.stdout + added.stderr
    grant_id = secret["grant_id"]

    for args in (
        ["secrets", "list", "--app", app["id"]],
        ["secrets", "show", secret["secret_id"]],
        ["grants", "show", grant_id],
    ):
        out = run(sqlite_vault, *args)
        assert CANARY not in out.stdout + out.stderr
        assert secret["secret_id"] in out.stdout or grant_id in out.stdout

    clone = json.loads(
        run(
            sqlite_vault,
            "grants",
            "clone",
            grant_id,
            "--ttl",
            "600",
            "--policy",
            '{"allowed_methods": ["GET"]}',
            "--json",
        ).stdout
    )
    assert clone["parent_grant_id"] == grant_id and clone["expires_at"]
    run(sqlite_vault, "grants", "revoke", clone["grant_id"])
    assert (
        json.loads(run(sqlite_vault, "grants", "show", clone["grant_id"], "--json").stdout)[
            "status"
        ]
        == "revoked"
    )

    rotated = run(
        sqlite_vault,
        "secrets",
        "rotate",
        secret["secret_id"],
        "--stdin",
        "--json",
        stdin="sk-rotated-value\n",
    )
    assert json.loads(rotated.stdout)["version"] == 2
    run(sqlite_vault, "secrets", "delete", secret["secret_id"])
    assert (
        json.loads(run(sqlite_vault, "grants", "show", grant_id, "--json").stdout)["status"]
        == "revoked"
    )
    run(sqlite_vault, "keys", "revoke", key["id"])

    verify = run(sqlite_vault, "audit", "verify", "--json")
    assert json.loads(verify.stdout)["ok"] is True
    events = json.loads(run(sqlite_vault, "audit", "list", "--json", "--limit", "100").stdout)
    names = {e["event"] for e in events}
    assert {
        "app:create",
        "key:create",
        "secret:create",
        "grant:clone",
        "grant:revoke",
        "secret:rotate",
        "secret:delete",
        "key:revoke",
    } <= names
    exported = run(sqlite_vault, "audit", "export", "--format", "jsonl").stdout
    assert CANARY not in exported and len(exported.splitlines()) == len(events)


def test_the_secret_value_is_never_taken_from_argv(sqlite_vault: Vault) -> None:
    result = run(sqlite_vault, "secrets", "add", "--app", "x", "--name", "n", CANARY, check=False)
    assert result.returncode != 0
    assert "never read from the command line" in result.stderr
    assert CANARY not in result.stdout + result.stderr


def test_api_errors_are_printed_clearly(sqlite_vault: Vault) -> None:
    result = run(
        sqlite_vault, "grants", "show", "00000000-0000-4000-8000-000000000000", check=False
    )
    assert result.returncode == 1
    assert "404 grant_not_found" in result.stderr


def test_a_wrong_admin_key_is_reported(sqlite_vault: Vault) -> None:
    result = run(
        sqlite_vault,
        "apps",
        "list",
        check=False,
        extra_env={"VAULTGATE_ADMIN_KEY": "vg_admin_" + "x" * 40},
    )
    assert result.returncode == 1 and "401 invalid_key" in result.stderr


def test_providers_are_listed_offline() -> None:
    out = subprocess.run(
        [*VAULTGATE, "providers", "show", "anthropic", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    provider = json.loads(out)
    assert provider["slug"] == "anthropic"
    listed = subprocess.run(
        [*VAULTGATE, "providers", "list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert len(listed.splitlines()) > 62


def test_init_twice_refuses_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "vault"
    first = subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(first.stdout)
    assert set(result) == {"admin_key", "portal_user", "portal_password", "data_dir"}
    assert result["admin_key"].startswith("vg_admin_") and len(result["admin_key"]) == 49
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    second = subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "already initialised" in second.stderr and "nothing was changed" in second.stderr
    after = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    assert before["master.key"] == after["master.key"]
    assert before.keys() <= after.keys()


@pytest.mark.parametrize("env_key", ["not base64!", "QUJD"])
def test_serve_refuses_a_wrong_or_malformed_master_key(tmp_path: Path, env_key: str) -> None:
    data = tmp_path / "vault"
    subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    env = {**os.environ, "VAULTGATE_MASTER_KEY": env_key}
    result = subprocess.run(
        [*VAULTGATE, "serve", "--data-dir", str(data), "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr and "master_key" in result.stderr.lower()
    assert env_key not in result.stderr


def test_serve_refuses_another_valid_master_key(tmp_path: Path) -> None:
    import base64

    data = tmp_path / "vault"
    subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    other = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "VAULTGATE_MASTER_KEY": other}
    result = subprocess.run(
        [*VAULTGATE, "serve", "--data-dir", str(data), "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr and "missing" in result.stderr


def test_serve_refuses_a_missing_key_file(tmp_path: Path) -> None:
    data = tmp_path / "vault"
    subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (data / "master.key").unlink()
    result = subprocess.run(
        [*VAULTGATE, "serve", "--data-dir", str(data), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "no master key" in result.stderr


def test_serve_with_two_workers_serves_and_stops(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from support import free_port

    data = tmp_path / "vault"
    init = json.loads(
        subprocess.run(
            [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    port = free_port()
    proc = subprocess.Popen(
        [*VAULTGATE, "serve", "--data-dir", str(data), "--port", str(port), "--workers", "2"],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the workers did not come up"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {init['admin_key']}"}
        # Every connection may land on either worker: each must know the same keys and data.
        names = [f"app-{i}" for i in range(6)]
        for name in names:
            with httpx.Client(trust_env=False) as fresh:
                created = fresh.post(f"{base}/v1/apps", json={"name": name}, headers=headers)
                assert created.status_code == 201
        with httpx.Client(trust_env=False) as client:
            listed = client.get(f"{base}/v1/apps", headers=headers).json()["items"]
            assert sorted(a["name"] for a in listed) == names
            assert client.get(f"{base}/v1/audit/verify", headers=headers).json()["ok"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_audit_filter_flags_reach_list_and_export(sqlite_vault: Vault) -> None:
    run(sqlite_vault, "apps", "create", "filter-a")
    run(sqlite_vault, "apps", "create", "filter-b")
    everything = json.loads(run(sqlite_vault, "audit", "list", "--json").stdout)
    created = json.loads(
        run(sqlite_vault, "audit", "list", "--event", "app:create", "--json").stdout
    )
    assert len(created) == 2 < len(everything)
    assert {e["event"] for e in created} == {"app:create"}
    exported = run(sqlite_vault, "audit", "export", "--event", "app:create").stdout
    assert [json.loads(line)["seq"] for line in exported.splitlines()] == sorted(
        e["seq"] for e in created
    )
    only_last = run(sqlite_vault, "audit", "list", "--until", created[0]["ts"], "--json").stdout
    assert created[0]["seq"] not in {e["seq"] for e in json.loads(only_last)}


def test_an_unknown_audit_outcome_flag_is_refused(sqlite_vault: Vault) -> None:
    result = run(sqlite_vault, "audit", "list", "--outcome", "sideways", check=False)
    assert result.returncode != 0 and "outcome" in result.stderr
