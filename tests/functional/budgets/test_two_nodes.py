"""Two ``serve`` processes on one PostgreSQL database of the test's own: the budget holds exactly.

Calls alternate between the nodes (each on a fresh connection): the answer that crosses a
token budget on one node completes, and the very next call, on the other node, is refused.
Fired all at once over both nodes, a budget of N requests admits exactly N.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from functional.budgets.conftest import clone, store, transparent, usage
from functional.fleet.nodes import VAULTGATE, init_vault
from support import Vault, free_port
from support.audit import wait_for_events
from support.injection import Tenant
from support.llm import LlmUpstream

# Starting two nodes can take minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]
START_TIMEOUT = 300.0


@dataclass
class Node:
    vault: Vault
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return self.vault.base_url


def _start(data_dir: Path, init: dict[str, Any], url: str) -> Node:
    """One ``serve`` process of one worker, ready once ``/readyz`` answers 200."""
    port = free_port()
    env = {
        "VAULTGATE_DATA_DIR": str(data_dir),
        "VAULTGATE_DATABASE_URL": url,
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
    }
    proc = subprocess.Popen(
        [*VAULTGATE, "serve", "--port", str(port)],
        env={**os.environ, **env},
        stderr=subprocess.DEVNULL,
    )
    vault = Vault(f"http://127.0.0.1:{port}", init["admin_key"], "", "", data_dir, env)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert proc.poll() is None, "serve exited"
        try:
            if httpx.get(f"{vault.base_url}/readyz", trust_env=False).status_code == 200:
                return Node(vault, proc)
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the node did not come up"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, pg_module_url: str) -> Iterator[list[Node]]:
    data_dir: Path = tmp_path_factory.mktemp("budget-nodes") / "data"
    init = init_vault(data_dir, pg_module_url)
    started: list[Node] = []
    try:
        for _ in range(2):
            started.append(_start(data_dir, init, pg_module_url))
        yield started
    finally:
        for node in started:
            node.proc.terminate()
            node.proc.wait(timeout=60)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_token_budget_holds_across_two_nodes(
    nodes: list[Node], llm: LlmUpstream, stream: bool
) -> None:
    a, b = nodes
    tenant = Tenant.create(a.vault, f"tokens-{uuid.uuid4().hex[:8]}")
    parent = store(tenant, llm, {"tokens": 120, "per": "day"})
    agent = clone(a.vault, parent, ttl_seconds=600).json()["grant_id"]
    statuses = []
    for node in (a, b, a, b, a):
        answer, _ = transparent(node.base_url, tenant.key, agent, "openai", stream)
        statuses.append(answer.status_code)
    # 50, 100, 150 tokens: the third answer crosses 120 and completes; every later call fails.
    assert statuses == [200, 200, 200, 429, 429]
    window = usage(b.vault, agent)["budgets"][1]["window"]  # the parent's, shared
    assert (window["requests"], window["spent"]) == (3, 150)
    denials = wait_for_events(a.vault, 2, grant_id=agent, event="grant:deny")
    assert {d["code"] for d in denials} == {"quota_exceeded"}


def test_a_request_budget_admits_exactly_n_when_both_nodes_race(
    nodes: list[Node], llm: LlmUpstream
) -> None:
    tenant = Tenant.create(nodes[0].vault, f"requests-{uuid.uuid4().hex[:8]}")
    grant = store(tenant, llm, {"requests": 7, "per": "hour"})

    def call(i: int) -> int:
        node = nodes[i % 2]
        url = f"{node.base_url}/proxy/{grant}/no-usage"
        headers = {"Authorization": f"Bearer {tenant.key}"}
        return httpx.post(url, json={}, headers=headers, trust_env=False, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(call, range(24)))
    assert statuses.count(200) == 7
    assert statuses.count(429) == 17
    assert usage(nodes[1].vault, grant)["budgets"][0]["window"]["requests"] == 7
