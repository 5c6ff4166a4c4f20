"""A new pending approval is announced to a webhook: JSON, HMAC-signed, retried with backoff."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.approvals import SECRET
from support.audit import wait_until
from support.injection import Tenant, sdk_call
from vaultgate.server.approvals.notify import signature

HOOK_SECRET = "hook-secret-Jq2"


@pytest.fixture
def receiver() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def hooked(tmp_path: Path, receiver: Upstream) -> Iterator[Vault]:
    env = {
        "VAULTGATE_APPROVAL_WEBHOOK_URL": f"{receiver.origin}/hooks/approvals",
        "VAULTGATE_APPROVAL_WEBHOOK_SECRET": HOOK_SECRET,
        "VAULTGATE_APPROVAL_WEBHOOK_BACKOFF_MS": "20",
        "VAULTGATE_PUBLIC_URL": "https://vault.example.com/",
    }
    with run_vault(tmp_path / "data", extra_env=env) as server:
        yield server


def test_a_pending_approval_is_announced_signed_and_retried(
    hooked: Vault, receiver: Upstream, upstream: Upstream
) -> None:
    receiver.fail_next = 2  # the receiver is down for the first two attempts
    tenant = Tenant.create(hooked)
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": SECRET},
            "policy": {"requires_approval": {"approvals": 2}},
        },
        [upstream.origin],
    )
    held = sdk_call(
        hooked,
        tenant.key,
        "/sdk/proxy",
        {
            "grant_id": grant,
            "method": "POST",
            "url": f"{upstream.origin}/v1/wire?x=1",
            "body": {"note": "canary-hook-body-Lp0"},
            "reason": "wire 10k",
        },
    )
    assert held.status_code == 202, held.text
    pending = held.json()
    wait_until(lambda: len(receiver.requests) >= 3)
    assert len(receiver.requests) == 3, "delivered once it got through, and only then"
    got = receiver.last()
    payload = json.loads(got.body)
    assert payload["event"] == "approval.requested"
    assert payload["approval_id"] == pending["approval_id"]
    assert payload["approval_url"] == (
        f"https://vault.example.com/portal/approvals/{pending['approval_group_id']}"
    )
    assert (payload["method"], payload["path"], payload["reason"]) == (
        "POST",
        "/v1/wire",
        "wire 10k",
    )
    assert payload["approvals_required"] == 2
    stamp = got.headers["x-vaultgate-timestamp"]
    assert abs(int(stamp) - time.time()) < 300
    assert got.headers["x-vaultgate-signature"] == signature(HOOK_SECRET, stamp, got.body)
    assert got.headers["x-vaultgate-signature"] != signature("other", stamp, got.body)
    for secret in (SECRET, "canary-hook-body-Lp0", tenant.key, HOOK_SECRET):
        assert secret not in repr(got.raw_headers) + got.body.decode()
    assert upstream.requests == []
