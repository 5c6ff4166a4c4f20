"""One refresh per fleet, and a rotated refresh token that outlives a kill -9.

Real ``serve`` processes against a real authorization server (tests/support/oauth_server.py)
whose token endpoint counts what reaches it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from functional.fleet.nodes import Node, init_vault, start_node
from support.injection import Tenant
from support.oauth_server import AuthServer, run_auth_server

CONCURRENT = 500
# Starting four serve processes on a 2-core machine shared with other jobs can take minutes.
pytestmark = pytest.mark.timeout(900)
# 250 concurrent proxied calls of one grant per node: above the default per-grant cap (64).
WIDE = {"VAULTGATE_MAX_INFLIGHT_PER_GRANT": "1000"}
CANARY_SECRET = "canary-fleet-client-secret-Wm42Tq"


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with run_auth_server() as server:
        yield server


def _refresh_secret(tenant: Tenant, auth: AuthServer, refresh: str, client_id: str) -> str:
    return tenant.store(
        {
            "name": f"oauth-{uuid.uuid4().hex[:8]}",
            "credential_type": "oauth2_refresh_token",
            "credential": {
                "token_url": auth.token_url,
                "client_id": client_id,
                "client_secret": CANARY_SECRET,
                "refresh_token": refresh,
                # Expired an hour ago: the very first uses all find the token due.
                "access_token": f"stale-{uuid.uuid4().hex}",
                "expires_at": str(int(time.time()) - 3600),
            },
        },
        [auth.origin],
    )


async def _storm(nodes: list[Node], key: str, grant_id: str, count: int) -> list[int]:
    """``count`` transparent-proxy calls at once, spread over every node, each on its own
    connection (so the kernel spreads them over each node's workers too)."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:

        async def one(i: int) -> int:
            node = nodes[i % len(nodes)]
            answer = await client.get(
                f"{node.base_url}/proxy/{grant_id}/api/whoami",
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            return answer.status_code

        return await asyncio.gather(*(one(i) for i in range(count)))


def _no_canaries(nodes: list[Node], values: list[str]) -> None:
    for node in nodes:
        text = "\n".join(node.log)
        for value in values:
            assert value not in text


@pytest.fixture
def pg_fleet(tmp_path: Path, fleet_pg_url: str) -> Iterator[list[Node]]:
    data_dir = tmp_path / "data"
    init = init_vault(data_dir, fleet_pg_url)
    nodes: list[Node] = []
    try:
        for _ in range(2):
            nodes.append(start_node(data_dir, init, fleet_pg_url, workers=2, extra_env=WIDE))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_500_concurrent_uses_on_an_expired_token_make_one_token_request(
    pg_fleet: list[Node], auth: AuthServer
) -> None:
    client = auth.add_client(client_secret=CANARY_SECRET)
    seeded = auth.seed_refresh_token(client)
    tenant = Tenant.create(pg_fleet[0].vault, "oauth-fleet")
    grant_id = _refresh_secret(tenant, auth, seeded, client.client_id)
    statuses = asyncio.run(_storm(pg_fleet, tenant.key, grant_id, CONCURRENT))
    # Every use carried a token the resource accepted, and exactly one reached the provider.
    assert collections.Counter(statuses) == {200: CONCURRENT}
    assert auth.token_requests == 1
    rotated = auth.live_refresh_tokens(client)
    assert len(rotated) == 1
    _no_canaries(pg_fleet, [CANARY_SECRET, seeded, *rotated, *auth.issued_access_tokens()])


def _kill_9(node: Node) -> None:
    """SIGKILL the parent and every worker: no shutdown code of the vault runs."""
    pids = [node.proc.pid, *node.worker_pids()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.proc.wait(timeout=30)
    for pid in node.worker_pids():
        _wait_gone(pid)
    node.stop()


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"worker {pid} survived SIGKILL"
        time.sleep(0.05)


def _wait_expired(auth: AuthServer) -> None:
    """Until every token the server issued is past its lifetime (the server's own verdict)."""
    deadline = time.monotonic() + 30
    while not auth.all_expired():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _use(node: Node, key: str, grant_id: str) -> httpx.Response:
    return httpx.get(
        f"{node.base_url}/proxy/{grant_id}/api/whoami",
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
        timeout=60,
    )


def test_a_rotated_refresh_token_survives_kill_9_right_after_the_refresh(
    tmp_path: Path, auth: AuthServer
) -> None:
    data_dir = tmp_path / "data"
    init: dict[str, Any] = init_vault(data_dir, None)
    node = start_node(data_dir, init, None, workers=2)
    try:
        client = auth.add_client(client_secret=CANARY_SECRET)
        seeded = auth.seed_refresh_token(client)
        tenant = Tenant.create(node.vault, "oauth-kill")
        grant_id = _refresh_secret(tenant, auth, seeded, client.client_id)
        auth.expires_in = 1  # every token is due again by the time the vault is back
        assert _use(node, tenant.key, grant_id).status_code == 200
    finally:
        _kill_9(node)
    # The provider rotated and revoked the seeded token; only the vault's stored copy is live.
    assert auth.token_requests == 1
    assert seeded not in auth.live_refresh_tokens(client)
    _wait_expired(auth)
    restarted = start_node(data_dir, init, None, workers=2)
    try:
        answer = _use(restarted, tenant.key, grant_id)
        assert answer.status_code == 200, answer.text
        assert auth.token_requests == 2
        assert auth.grant_types_seen == ["refresh_token", "refresh_token"]
        _no_canaries([node, restarted], [CANARY_SECRET, seeded, *auth.issued_access_tokens()])
    finally:
        restarted.stop()
