"""Two ``serve`` processes on one PostgreSQL database of the test's own: the budget holds exactly.

Calls alternate between the nodes (each on a fresh connection): the answer that crosses a
token budget on one node completes, and the very next call, on the other node, is refused.
Fired all at once over both nodes, a budget of N requests admits exactly N.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from functional.budgets.conftest import clone, store, transparent, usage
from functional.fleet.nodes import Node, init_vault, start_node
from support.audit import wait_for_events
from support.injection import Tenant
from support.llm import LlmUpstream

# Starting two nodes of two workers each takes minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, pg_module_url: str) -> Iterator[list[Node]]:
    data_dir: Path = tmp_path_factory.mktemp("budget-nodes") / "data"
    init = init_vault(data_dir, pg_module_url)
    started: list[Node] = []
    try:
        for _ in range(2):
            started.append(start_node(data_dir, init, pg_module_url, workers=2))
        yield started
    finally:
        for node in started:
            node.stop()


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
