"""A held request and its result are sealed: no body, header or secret in plaintext at rest.

The canaries are looked for in every byte SQLite keeps (file, WAL, shared memory) and in every
row of every table on PostgreSQL, while the call waits and after it ran.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import alter_sdk
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod
from alter_sdk.models import PendingApproval

from support import Upstream, Vault
from support.approvals import SECRET, Held, decide
from support.database import database_url, engine_of, sqlite_bytes

pytestmark = pytest.mark.usefixtures("official")
BODY_CANARY = "canary-held-body-Wm40Pz"
HEADER_CANARY = "canary-held-header-Ys92"
CANARIES = (BODY_CANARY, HEADER_CANARY, SECRET)


def _stored(vault: Vault) -> bytes:
    if database_url(vault).startswith("sqlite"):
        return sqlite_bytes(vault)
    out = []
    with engine_of(vault) as engine, engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    out.append(
                        bytes(value)
                        if isinstance(value, bytes | memoryview)
                        else str(value).encode()
                    )
    return b"\n".join(out)


def _assert_absent(vault: Vault) -> None:
    stored = _stored(vault)
    for canary in CANARIES:
        for form in (canary.encode(), base64.b64encode(canary.encode())):
            assert form not in stored, f"{canary} is stored in plaintext"


async def test_no_held_body_header_or_secret_in_plaintext_at_rest(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await app.proxy_request(
            HttpMethod.POST,
            f"{upstream.origin}/v1/notes",
            grant_id=held.grant_id,
            json={"note": BODY_CANARY},
            extra_headers={"X-Note": HEADER_CANARY},
        )
        assert isinstance(pending, PendingApproval)
        _assert_absent(vault)
        with vault.admin() as admin:
            shown = admin.get(f"/v1/approvals/{pending.approval_id}").json()
        # The approver sees what they approve; the store never does.
        assert BODY_CANARY in shown["request"]["body_preview"]
        assert ["x-note", HEADER_CANARY] in [[k.lower(), v] for k, v in shown["request"]["headers"]]
        assert SECRET not in str(shown)
        assert decide(vault, str(pending.approval_id), "alice@example.com").status_code == 200
        result = await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
    assert result.status_code == 200
    assert upstream.last().headers["x-note"] == HEADER_CANARY
    assert BODY_CANARY.encode() in upstream.last().body
    _assert_absent(vault)
