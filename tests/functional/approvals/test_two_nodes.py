"""Two ``vaultgate serve`` processes on one PostgreSQL: decisions race across nodes, the call is
still sent exactly once, and a client waiting on the other node gets the answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import alter_sdk
import httpx
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod
from alter_sdk.models import PendingApproval

from support import Upstream, Vault, free_port
from support.approvals import SECRET, decide
from support.injection import Tenant
from vaultgate.server.auth.users import create_user

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]
pytestmark = pytest.mark.postgres


@dataclass
class Nodes:
    a: Vault
    b: Vault


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*VAULTGATE, "serve", "--port", str(port)],
        env={**os.environ, **env},
        stderr=subprocess.DEVNULL,
    )


def _ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{base} did not come up"
        time.sleep(0.2)


@pytest.fixture
def nodes(tmp_path: Path, pg_url: str) -> Iterator[Nodes]:
    env = {
        "VAULTGATE_DATA_DIR": str(tmp_path / "data"),
        "VAULTGATE_DATABASE_URL": pg_url,
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
    }
    init = subprocess.run(
        [*VAULTGATE, "init", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    first = json.loads(init.stdout)
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    for email in ("alice@example.com", "bob@example.com"):
        create_user(engine, email, "a-long-password-1234", datetime.now(UTC))
    engine.dispose()
    ports = free_port(), free_port()
    procs = [_serve(env, port) for port in ports]
    try:
        vaults = [
            Vault(f"http://127.0.0.1:{p}", first["admin_key"], "", "", tmp_path, env) for p in ports
        ]
        for vault in vaults:
            _ready(vault.base_url)
        yield Nodes(*vaults)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=30)


async def test_racing_decisions_on_two_nodes_send_the_call_once(
    nodes: Nodes, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = Tenant.create(nodes.a)
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": SECRET},
            "policy": {"requires_approval": {"approvals": 2}},
        },
        [upstream.origin],
    )
    monkeypatch.setenv("ALTER_BASE_URL", nodes.a.base_url)
    asker = alter_sdk.App(api_key=tenant.key)
    monkeypatch.setenv("ALTER_BASE_URL", nodes.b.base_url)
    waiter = alter_sdk.App(api_key=tenant.key)
    async with asker, waiter:
        for round_ in range(3):
            pending = await asker.proxy_request(
                HttpMethod.POST, f"{upstream.origin}/v1/round/{round_}", grant_id=grant
            )
            assert isinstance(pending, PendingApproval)
            approval_id = str(pending.approval_id)
            start = threading.Barrier(2)
            codes: list[int] = []

            def approve(node: Vault, person: str, aid: str = approval_id) -> None:
                start.wait()
                codes.append(decide(node, aid, person).status_code)

            threads = [
                threading.Thread(target=approve, args=(nodes.a, "alice@example.com")),
                threading.Thread(target=approve, args=(nodes.b, "bob@example.com")),
            ]
            for thread in threads:
                thread.start()
            result = await waiter.await_approval(approval_id, timeout=60, poll_interval=0.2)
            for thread in threads:
                thread.join(timeout=60)
            assert codes == [200, 200]
            assert result.status_code == 200
    paths = [r.path for r in upstream.requests]
    assert paths == ["/v1/round/0", "/v1/round/1", "/v1/round/2"], paths
