"""``vaultgate oauth-apps`` and ``vaultgate connections`` as a subprocess against a vault: the
client secret comes from stdin, is sealed, and no command prints it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import Vault

SECRET = "cs-canary-cli-oauth-7Hq2"


def run(vault: Vault, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAULTGATE_URL": vault.base_url, "VAULTGATE_ADMIN_KEY": vault.admin_key}
    return subprocess.run(
        [sys.executable, "-m", "vaultgate.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# Six CLI processes; on a loaded 2-core machine each start can take tens of seconds.
@pytest.mark.timeout(600)
def test_the_cli_registers_lists_and_deletes_an_oauth_app(sqlite_vault: Vault) -> None:
    app_id, _ = sqlite_vault.make_app_key("cli-oauth")
    made = run(
        sqlite_vault,
        "oauth-apps", "create", app_id, "--provider", "google", "--template", "google",
        "--client-id", "cid-1", "--stdin", "--json",
        stdin=SECRET + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["has_client_secret"] is True
    assert created["revoke_url"] == "https://oauth2.googleapis.com/revoke"
    listed = run(sqlite_vault, "oauth-apps", "list", "--app-id", app_id, "--json")
    assert [a["provider"] for a in json.loads(listed.stdout)] == ["google"]
    templates = run(sqlite_vault, "oauth-apps", "templates")
    assert "microsoft" in templates.stdout
    nobody = run(sqlite_vault, "connections", "list", "--user", "nobody", "--json")
    assert json.loads(nobody.stdout) == []
    bad = run(sqlite_vault, "oauth-apps", "create", app_id, "--provider", "acme",
              "--client-id", "c", "--stdin", stdin="s\n")  # fmt: skip
    assert bad.returncode != 0 and "authorize_url" in bad.stderr
    assert run(sqlite_vault, "oauth-apps", "delete", created["id"]).returncode == 0
    for out in (made, listed, templates, bad):
        assert SECRET not in out.stdout + out.stderr
