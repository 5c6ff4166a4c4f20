"""Master-key rotation across two nodes on one PostgreSQL database, each with its own key file.

Node A's host runs the CLI: ``master-key add`` stages a key in A's key file; ``rewrap`` refuses
while node B (its own copy of the key file, without the new key) is live. B is then paused past
the liveness bound, so the re-wrap goes ahead without it, the situation an operator must never
reach but a partition can: B then meets a re-wrapped data key. It must answer 503
``master_key_unavailable``, log the key id, audit a failure (no allowed use) and keep its caches.
Once B's key file gets the key, B picks it up by itself and serves; a re-wrap now proceeds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from functional.fleet.nodes import VAULTGATE, Node, init_vault, start_node
from support import Upstream
from support.audit import events, verify
from support.injection import Tenant, error_of

TOKEN_1 = "canary-mk-one-Qw8Rt3"
TOKEN_2 = "canary-mk-two-Lp5Zx7"
WAIT_TIMEOUT = 60.0


@pytest.fixture
def two_nodes(tmp_path: Path, fleet_pg_url: str) -> Iterator[tuple[Node, Node, Path, Path]]:
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    init = init_vault(dir_a, fleet_pg_url)
    dir_b.mkdir(mode=0o700)
    shutil.copy2(dir_a / "master.key", dir_b / "master.key")  # B's own copy, mode kept (0600)
    nodes: list[Node] = []
    try:
        for name, data in (("node-a", dir_a), ("node-b", dir_b)):
            # A long grant-cache lifetime, so that only a cache drop (never expiry) is a miss.
            env = {"VAULTGATE_NODE_NAME": name, "VAULTGATE_CACHE_TTL": "600"}
            nodes.append(start_node(data, init, fleet_pg_url, workers=1, extra_env=env))
        yield nodes[0], nodes[1], dir_a, dir_b
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)
            node.stop()


def _cli(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAULTGATE_DATA_DIR": str(data_dir), "VAULTGATE_DATABASE_URL": url}
    return subprocess.run(
        [*VAULTGATE, "master-key", *args], capture_output=True, text=True, env=env, timeout=180
    )


def _store(tenant: Tenant, upstream: Upstream, token: str) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": token}}, [upstream.origin]
    )


def _proxy(node: Node, key: str, grant: str) -> httpx.Response:
    return httpx.get(
        f"{node.base_url}/proxy/{grant}/mk",
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
        timeout=30,
    )


def _misses(node: Node) -> int:
    text = httpx.get(f"{node.base_url}/metrics", trust_env=False, timeout=30).text
    found = re.search(r'^vaultgate_grant_cache_lookups_total\{result="miss"\} (\S+)$', text, re.M)
    assert found, text
    return int(float(found.group(1)))


def _keys_reported(url: str, node_name: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT key_ids FROM fleet_nodes WHERE node_id LIKE %s", (node_name + "/%",)
        ).fetchall()
    return [key for (ids,) in rows for key in ids]


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def _give_key(source: Path, target: Path) -> None:
    """Replace B's key file atomically, as an operator's copy would (never half a file)."""
    staging = target.with_name(".master.key.new")
    shutil.copy2(source, staging)
    os.replace(staging, target)


def test_master_key_rotation_across_nodes_with_their_own_key_files(
    two_nodes: tuple[Node, Node, Path, Path], fleet_pg_url: str, fleet_upstream: Upstream
) -> None:
    node_a, node_b, dir_a, dir_b = two_nodes
    tenant = Tenant.create(node_a.vault, f"mk-{uuid.uuid4().hex[:8]}")
    warm = _store(tenant, fleet_upstream, TOKEN_1)
    cold = _store(tenant, fleet_upstream, TOKEN_2)  # never used on B before the re-wrap
    assert _proxy(node_b, tenant.key, warm).status_code == 200  # B caches this grant

    added = _cli(dir_a, fleet_pg_url, "add")
    assert added.returncode == 0, added.stderr
    new_key = re.search(r"added master key (\S+)", added.stdout).group(1)  # type: ignore[union-attr]
    _wait_for(lambda: new_key in _keys_reported(fleet_pg_url, "node-a"), "A holds the new key")

    # The refusal: B is live and lacks the key; the error names both.
    refused = _cli(dir_a, fleet_pg_url, "rewrap", "--wait", "2")
    assert refused.returncode != 0
    assert "node-b/" in refused.stderr and new_key in refused.stderr, refused.stderr
    assert "node-a/" not in refused.stderr
    # Its allowed twin: nothing moved, so both nodes serve both secrets.
    for node in (node_a, node_b):
        assert _proxy(node, tenant.key, warm).status_code == 200

    # Forced: B paused past the liveness bound, so the re-wrap goes ahead without it.
    os.kill(node_b.proc.pid, signal.SIGSTOP)
    try:
        forced = _cli(dir_a, fleet_pg_url, "rewrap", "--wait", "60")
    finally:
        os.kill(node_b.proc.pid, signal.SIGCONT)
    assert forced.returncode == 0, forced.stderr
    assert f"now under {new_key}" in forced.stdout

    misses = _misses(node_b)
    answer = _proxy(node_b, tenant.key, cold)
    assert answer.status_code == 503, answer.text
    assert error_of(answer) == "master_key_unavailable"
    assert answer.headers["x-vaultgate-error"] == "master_key_unavailable"
    assert TOKEN_2 not in answer.text
    node_b.wait_for_log(f"master key {new_key} is not held by this node")
    # Caches kept: the warm grant is still answered from B's cache (no new miss).
    after_refusal = _misses(node_b)
    assert after_refusal == misses + 1  # the cold grant's own first lookup
    assert _proxy(node_b, tenant.key, warm).status_code == 200
    assert _misses(node_b) == after_refusal
    # Audited as a failure, never as an allowed use; nothing reached the upstream.
    _wait_for(
        lambda: events(node_a.vault, grant_id=cold, event="grant:deny"), "the failure audited"
    )
    failures = events(node_a.vault, grant_id=cold, event="grant:deny")
    assert [(e["outcome"], e["code"]) for e in failures] == [("error", "master_key_unavailable")]
    assert events(node_a.vault, grant_id=cold, event="grant:use") == []
    assert not [r for r in fleet_upstream.requests if TOKEN_2 in r.headers.get("authorization", "")]
    assert all(TOKEN_1 not in line and TOKEN_2 not in line for line in node_b.log)

    # B is given the key: it re-reads its key file, reports the key, and serves the secret.
    _give_key(dir_a / "master.key", dir_b / "master.key")
    _wait_for(lambda: new_key in _keys_reported(fleet_pg_url, "node-b"), "B holds the new key")
    for node in (node_a, node_b):
        served = _proxy(node, tenant.key, cold)
        assert served.status_code == 200, served.text
        assert fleet_upstream.last().headers["authorization"] == f"Bearer {TOKEN_2}"
        assert _proxy(node, tenant.key, warm).status_code == 200
    # And with every live node holding the key, a re-wrap proceeds straight away.
    again = _cli(dir_a, fleet_pg_url, "rewrap", "--wait", "0")
    assert again.returncode == 0, again.stderr
    assert verify(node_a.vault)["ok"] is True
