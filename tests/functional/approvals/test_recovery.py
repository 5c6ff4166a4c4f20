"""After approval: a rotation meanwhile is used, and a lost sender ends as failed, never resent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import alter_sdk
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod
from alter_sdk.exceptions import ApprovalExecutionFailedError
from alter_sdk.models import PendingApproval

from support import Upstream, Vault
from support.approvals import Held, decide
from support.database import engine_of
from vaultgate.server.storage import tables as t

pytestmark = pytest.mark.usefixtures("official")


async def _ask(app: alter_sdk.App, held: Held, upstream: Upstream) -> str:
    pending = await app.proxy_request(
        HttpMethod.POST, f"{upstream.origin}/v1/charge", grant_id=held.grant_id, json={"n": 1}
    )
    assert isinstance(pending, PendingApproval)
    return str(pending.approval_id)


async def test_a_rotation_while_waiting_sends_the_new_credential(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        approval_id = await _ask(app, held, upstream)
        with vault.admin() as admin:
            secret_id = admin.get(f"/v1/grants/{held.grant_id}").json()["secret_id"]
            rotated = admin.post(
                f"/v1/secrets/{secret_id}/rotate", json={"credential": {"token": "rotated-Tk55"}}
            )
            assert rotated.status_code == 200, rotated.text
        assert decide(vault, approval_id, "bob@example.com").status_code == 200
        await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
    assert [r.headers["authorization"] for r in upstream.requests] == ["Bearer rotated-Tk55"]


async def test_a_sender_lost_after_its_claim_ends_failed_and_nothing_is_sent(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        approval_id = await _ask(app, held, upstream)
        # What a node that claimed the call and died before sending leaves behind, its lease
        # long over.
        with engine_of(vault) as engine, engine.begin() as conn:
            request_id = conn.execute(
                sa.select(t.approval_gates.c.request_id).where(t.approval_gates.c.id == approval_id)
            ).scalar_one()
            conn.execute(
                t.approval_requests.update()
                .where(t.approval_requests.c.id == request_id)
                .values(
                    status="executing",
                    claimed_by="a-node-that-died",
                    claimed_at=datetime.now(UTC) - timedelta(days=1),
                )
            )
        with pytest.raises(ApprovalExecutionFailedError, match="not sent again"):
            await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
        late = decide(vault, approval_id, "bob@example.com")
    assert late.status_code == 409
    assert upstream.requests == [], "a lost sender's call was sent again"
