"""``vaultgate approvals list|show|approve|deny`` as a subprocess against a running vault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from support import Upstream, Vault
from support.approvals import Held, wait_for_status
from support.injection import sdk_call


def run(vault: Vault, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAULTGATE_URL": vault.base_url, "VAULTGATE_ADMIN_KEY": vault.admin_key}
    result = subprocess.run(
        [sys.executable, "-m", "vaultgate.cli", "approvals", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _hold(vault: Vault, held: Held, upstream: Upstream, path: str) -> str:
    payload = {"grant_id": held.grant_id, "method": "PUT", "url": f"{upstream.origin}{path}"}
    answer = sdk_call(vault, held.tenant.key, "/sdk/proxy", payload)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["approval_group_id"])


def test_the_cli_lists_shows_approves_and_denies(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    first = _hold(vault, held, upstream, "/v1/first")
    second = _hold(vault, held, upstream, "/v1/second")

    table = run(vault, "list", "--status", "pending", "--grant", held.grant_id).stdout
    assert first in table and second in table and "PUT" in table
    shown = json.loads(run(vault, "show", first, "--json").stdout)
    assert shown["request"]["url"].endswith("/v1/first")

    run(vault, "approve", first, "--as", "alice@example.com", "--comment", "go")
    assert wait_for_status(vault, first, "executed")["upstream_status"] == 200
    denied = json.loads(run(vault, "deny", second, "--as", "bob@example.com", "--json").stdout)
    assert denied["status"] == "denied"
    again = run(vault, "approve", second, "--as", "carol@example.com", check=False)
    assert again.returncode != 0 and "approval_not_pending" in again.stderr
    assert [r.path for r in upstream.requests] == ["/v1/first"]
    executed = json.loads(run(vault, "list", "--status", "executed", "--json").stdout)
    assert [a["id"] for a in executed] == [first]
