"""Approval test helpers: a grant whose calls are held, deciding through the management API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from support.injection import Tenant
from support.servers import Vault

SECRET = "canary-approval-secret-Hq73"
APPROVERS = ("alice@example.com", "bob@example.com", "carol@example.com")


@dataclass
class Held:
    """A grant whose calls wait for approval, bound to one upstream."""

    tenant: Tenant
    grant_id: str


def decide(
    vault: Vault, approval_id: str, approver: str, verb: str = "approve", comment: str = "ok"
) -> httpx.Response:
    with vault.admin() as admin:
        return admin.post(
            f"/v1/approvals/{approval_id}/{verb}", json={"approver": approver, "comment": comment}
        )


def wait_for_status(
    vault: Vault, approval_id: str, wanted: str, timeout: float = 30
) -> dict[str, Any]:
    """Poll the management API until the approval reaches ``wanted`` (not a sleep: a deadline)."""
    deadline = time.monotonic() + timeout
    with vault.admin() as admin:
        while True:
            view = admin.get(f"/v1/approvals/{approval_id}").json()
            if view["status"] == wanted or time.monotonic() > deadline:
                assert view["status"] == wanted, view
                return dict(view)
            time.sleep(0.05)
