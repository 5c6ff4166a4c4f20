"""The CLI where a newcomer stumbles: the wrong directory, a secret typed on the command line,
a lost admin key, durations and help. Driven as a subprocess, as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support import Vault

CANARY = "sk-canary-argv-7Hq2xP0d"
VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTGATE_")}
    return {**env, **extra}


def vaultgate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VAULTGATE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=60,
        check=False,
    )


def remote(vault: Vault, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_env(VAULTGATE_URL=vault.base_url, VAULTGATE_ADMIN_KEY=vault.admin_key)
    return vaultgate(*args, env=env, stdin=stdin)


# --- the wrong directory -----------------------------------------------------------------------

LOCAL_COMMANDS = [
    ["users", "add", "someone@example.com"],
    ["users", "reset-password", "someone@example.com"],
    ["master-key", "rotate"],
    ["master-key", "rewrap"],
    ["admin-keys", "create", "--local", "--name", "recovery"],
    ["admin-keys", "list", "--local"],
    ["admin-keys", "revoke", "--local", "00000000-0000-4000-8000-000000000000"],
]


@pytest.mark.parametrize("command", LOCAL_COMMANDS, ids=[" ".join(c[:2]) for c in LOCAL_COMMANDS])
def test_a_local_command_in_the_wrong_directory_says_where_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    result = vaultgate(*command, cwd=tmp_path, stdin="a-long-enough-password\n" * 2)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: no vault here")
    assert "--data-dir" in lines[0] and "VAULTGATE_DATA_DIR" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no stray .vaultgate


def test_a_named_data_dir_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = vaultgate("users", "add", "a@example.com", "--data-dir", str(missing), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(missing) in result.stderr
    assert not missing.exists()


def test_the_environment_variable_is_honoured_as_well(tmp_path: Path) -> None:
    data = tmp_path / "vault"
    vaultgate("init", "--data-dir", str(data), "--json", cwd=tmp_path)
    result = vaultgate(
        "users",
        "add",
        "second@example.com",
        cwd=tmp_path / "vault",  # the wrong place for a relative default, but the variable wins
        env=clean_env(VAULTGATE_DATA_DIR=str(data)),
        stdin="a-long-enough-password\n",
    )
    assert result.returncode == 0, result.stderr
    assert not (data / ".vaultgate").exists()


# --- a secret on the command line -------------------------------------------------------------

ARGV_SECRETS = {
    "positional": ["secrets", "add", "--app", "a", "--name", "n", CANARY],
    "value-flag": ["secrets", "add", "--app", "a", "--name", "n", "--value", CANARY],
    "value-equals": ["secrets", "add", "--app", "a", "--name", "n", f"--value={CANARY}"],
    "token-flag": ["secrets", "add", "--app", "a", "--name", "n", "--token", CANARY],
    "rotate": ["secrets", "rotate", "some-secret-id", CANARY],
    "rotate-value": ["secrets", "rotate", "some-secret-id", "--value", CANARY],
}


@pytest.mark.parametrize("args", ARGV_SECRETS.values(), ids=list(ARGV_SECRETS))
def test_a_secret_on_the_command_line_is_refused_unechoed_with_the_ways_to_give_it(
    sqlite_vault: Vault, args: list[str]
) -> None:
    result = remote(sqlite_vault, *args)
    assert result.returncode == 2
    assert CANARY not in result.stdout + result.stderr
    assert "hidden prompt" in result.stderr
    assert "--stdin" in result.stderr and "--from-file" in result.stderr
    assert "did you mean" not in result.stderr.lower() and "--name?" not in result.stderr
    with sqlite_vault.admin() as admin:
        assert admin.get("/v1/secrets").json()["items"] == []


def test_a_password_on_the_command_line_is_refused_unechoed(tmp_path: Path) -> None:
    data = tmp_path / "vault"
    vaultgate("init", "--data-dir", str(data), "--json")
    result = vaultgate("users", "add", "b@example.com", CANARY, "--data-dir", str(data))
    assert result.returncode == 2 and CANARY not in result.stdout + result.stderr
    assert "hidden prompt" in result.stderr and "standard input" in result.stderr


def test_the_twin_a_secret_from_stdin_is_stored(sqlite_vault: Vault) -> None:
    app = json.loads(remote(sqlite_vault, "apps", "create", "twin", "--json").stdout)
    added = remote(
        sqlite_vault,
        *(
            "secrets",
            "add",
            "--app",
            app["id"],
            "--name",
            "n",
            "--type",
            "bearer",
            "--host",
            "api.example.com",
            "--stdin",
            "--json",
        ),
        stdin=CANARY + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert CANARY not in added.stdout + added.stderr and json.loads(added.stdout)["grant_id"]


# --- admin keys: recovery on the data directory, management with an admin key ------------------


def _api_status(vault: Vault, key: str) -> tuple[int, str]:
    response = httpx.get(
        f"{vault.base_url}/v1/apps", headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )
    return response.status_code, response.json().get("detail", {}).get("error", "")


def test_a_lost_admin_key_is_recovered_on_the_data_directory(sqlite_vault: Vault) -> None:
    """Every admin key lost: revoke them and mint a new one locally, while the server runs."""
    data = ["--data-dir", str(sqlite_vault.data_dir)]
    listed = json.loads(vaultgate("admin-keys", "list", *data, "--json").stdout)
    assert [k["name"] for k in listed] == ["initial admin key"]
    assert sqlite_vault.admin_key not in json.dumps(listed)

    revoked = vaultgate("admin-keys", "revoke", listed[0]["id"], *data)
    assert revoked.returncode == 0, revoked.stderr
    assert "no admin key is left" in revoked.stderr  # allowed locally, with a warning
    created = vaultgate("admin-keys", "create", "--name", "recovery", *data, "--json")
    assert created.returncode == 0, created.stderr
    new_key = json.loads(created.stdout)["api_key"]
    assert new_key.startswith("vg_admin_")

    assert _api_status(sqlite_vault, new_key) == (200, "")
    assert _api_status(sqlite_vault, sqlite_vault.admin_key) == (401, "key_revoked")
    with httpx.Client(
        base_url=sqlite_vault.base_url,
        headers={"Authorization": f"Bearer {new_key}"},
        trust_env=False,
    ) as admin:
        events = admin.get("/v1/audit", params={"limit": 50}).json()["items"]
        assert admin.get("/v1/audit/verify").json()["ok"] is True  # one chain, two writers
    local = [e for e in events if e["event"] in ("key:create", "key:revoke")][:2]
    assert [e["event"] for e in local] == ["key:create", "key:revoke"]
    for event in local:
        assert event["portal_user"].startswith("vaultgate admin-keys --local")
    assert new_key not in json.dumps(events)


def test_admin_keys_are_managed_remotely_and_the_last_one_is_kept(sqlite_vault: Vault) -> None:
    made = remote(sqlite_vault, "admin-keys", "create", "--name", "ci", "--expires-in", "7d")
    assert made.returncode == 0, made.stderr
    second = next(line.split()[-1] for line in made.stdout.splitlines() if "api_key" in line)
    listed = json.loads(remote(sqlite_vault, "admin-keys", "list", "--json").stdout)
    assert sorted(k["name"] for k in listed) == ["ci", "initial admin key"]
    ci = next(k for k in listed if k["name"] == "ci")
    assert ci["expires_at"] is not None and second not in json.dumps(listed)

    # An app key's id is not an admin key: 404, nothing revoked.
    app = json.loads(remote(sqlite_vault, "apps", "create", "k", "--json").stdout)
    app_key = json.loads(
        remote(sqlite_vault, "keys", "create", app["id"], "--name", "k", "--json").stdout
    )
    wrong = remote(sqlite_vault, "admin-keys", "revoke", app_key["id"])
    assert wrong.returncode == 1 and "404 key_not_found" in wrong.stderr

    first = next(k for k in listed if k["name"] == "initial admin key")
    env = clean_env(VAULTGATE_URL=sqlite_vault.base_url, VAULTGATE_ADMIN_KEY=second)
    assert vaultgate("admin-keys", "revoke", first["id"], env=env).returncode == 0
    itself = vaultgate("admin-keys", "revoke", ci["id"], env=env)
    assert itself.returncode == 1 and "cannot revoke itself" in itself.stderr
    assert _api_status(sqlite_vault, second) == (200, "")

    with httpx.Client(
        base_url=sqlite_vault.base_url,
        headers={"Authorization": f"Bearer {second}"},
        trust_env=False,
    ) as admin:
        events = admin.get("/v1/audit", params={"limit": 50}).json()["items"]
    revoke = next(e for e in events if e["event"] == "key:revoke")
    create = next(e for e in events if e["event"] == "key:create" and e["details"]["name"] == "ci")
    assert revoke["key_id"] == ci["id"] and revoke["details"]["key"] == first["id"]
    assert create["key_id"] == first["id"]


# --- durations and help --------------------------------------------------------------------------


def test_ttl_takes_a_duration(sqlite_vault: Vault) -> None:
    app = json.loads(remote(sqlite_vault, "apps", "create", "ttl", "--json").stdout)
    added = remote(
        sqlite_vault,
        *(
            "secrets",
            "add",
            "--app",
            app["id"],
            "--name",
            "n",
            "--type",
            "bearer",
            "--host",
            "api.example.com",
            "--stdin",
            "--json",
        ),
        stdin="value\n",
    )
    grant = json.loads(added.stdout)["grant_id"]
    cloned = remote(sqlite_vault, "grants", "clone", grant, "--ttl", "15m", "--json")
    assert cloned.returncode == 0, cloned.stderr
    clone = json.loads(cloned.stdout)
    from datetime import datetime

    lifetime = datetime.fromisoformat(clone["expires_at"]) - datetime.fromisoformat(
        clone["created_at"]
    )
    assert lifetime.total_seconds() == pytest.approx(900, abs=5)
    refused = remote(sqlite_vault, "grants", "clone", grant, "--ttl", "1w")
    assert refused.returncode == 2 and "30s, 15m, 2h, 7d" in refused.stderr


def test_since_takes_a_duration_ago_and_names_its_format(sqlite_vault: Vault) -> None:
    remote(sqlite_vault, "apps", "create", "recent")
    recent = json.loads(remote(sqlite_vault, "audit", "list", "--since", "1h", "--json").stdout)
    assert "app:create" in {e["event"] for e in recent}
    future = remote(sqlite_vault, "audit", "list", "--since", "2999-01-01T00:00:00Z", "--json")
    assert json.loads(future.stdout) == []
    bad = remote(sqlite_vault, "audit", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "2h" in bad.stderr
    assert "ISO 8601" in remote(sqlite_vault, "audit", "list", "--help").stdout
