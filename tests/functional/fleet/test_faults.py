"""Faults mid-load on a fleet: a node killed with SIGKILL, then PostgreSQL made unavailable.

Two nodes on one PostgreSQL database of the test's own carry a steady load of proxied calls, each
on its own path. Node B is killed (-9); later the database refuses every connection (the way
tests/functional/audit/test_fail_closed.py makes it unavailable: connections disallowed and the
open ones terminated), then comes back. Afterwards every call the upstream received must have
exactly one allowed use event, matched by its path, and the trail must verify.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from functional.fleet.conftest import PG_ADMIN_URL
from functional.fleet.nodes import Node, init_vault, start_node
from support import Upstream
from support.audit import events, verify
from support.injection import Tenant

TOKEN = "canary-fault-Hq3Vn8"
WAIT_TIMEOUT = 90.0


@pytest.fixture
def pair(tmp_path: Path, fleet_pg_url: str) -> Iterator[list[Node]]:
    data = tmp_path / "data"
    init = init_vault(data, fleet_pg_url)
    nodes: list[Node] = []
    try:
        for _ in range(2):
            nodes.append(start_node(data, init, fleet_pg_url, workers=1))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _allow_connections(dbname: str, allowed: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if allowed:
            return
        # Terminating is asynchronous: wait until no session of the database is left.
        deadline = time.monotonic() + WAIT_TIMEOUT
        while admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "sessions of the database never ended"
            time.sleep(0.05)


class Load:
    """Proxied calls in a loop over the live nodes, each on its own path, until stopped."""

    def __init__(self, nodes: list[Node], key: str, grant: str) -> None:
        self.nodes = nodes
        self.key, self.grant = key, grant
        self.statuses: list[int] = []  # 0: no answer (connection refused or reset)
        self._stop = threading.Event()
        self._numbers = itertools.count()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            n = next(self._numbers)
            node = self.nodes[n % len(self.nodes)]
            try:
                answer = httpx.get(
                    f"{node.base_url}/proxy/{self.grant}/fault/{n}",
                    headers={"Authorization": f"Bearer {self.key}"},
                    trust_env=False,
                    timeout=30,
                )
                self.statuses.append(answer.status_code)
            except httpx.HTTPError:
                self.statuses.append(0)

    def wait_for(self, status: int, more: int = 1) -> None:
        """Until ``more`` further answers with ``status`` arrived."""
        target = self.statuses.count(status) + more
        deadline = time.monotonic() + WAIT_TIMEOUT
        while self.statuses.count(status) < target:
            assert time.monotonic() < deadline, (
                f"never {more} more {status}: {Counter(self.statuses)}"
            )
            time.sleep(0.05)


def test_kill_a_node_and_lose_postgresql_mid_load_every_hit_has_one_use(
    pair: list[Node], fleet_pg_url: str, fleet_upstream: Upstream
) -> None:
    node_a, node_b = pair
    dbname = fleet_pg_url.rsplit("/", 1)[1]
    tenant = Tenant.create(node_a.vault, f"fault-{uuid.uuid4().hex[:8]}")
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [fleet_upstream.origin]
    )
    with Load(pair, tenant.key, grant) as load:
        load.wait_for(200, 20)
        os.kill(node_b.proc.pid, signal.SIGKILL)
        load.wait_for(0)  # B answers nothing any more
        load.wait_for(200, 10)  # A goes on serving
        _allow_connections(dbname, False)
        try:
            load.wait_for(503, 5)
        finally:
            _allow_connections(dbname, True)
        load.wait_for(200, 10)  # recovered by itself, no restart
    assert node_b.proc.wait(timeout=30) == -signal.SIGKILL

    hits = Counter(r.path.rsplit("/", 1)[1] for r in fleet_upstream.requests if "/fault/" in r.path)
    assert hits and set(hits.values()) == {1}, hits
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fleet_upstream.requests)
    uses = Counter(
        e["url"].rsplit("/", 1)[1]
        for e in events(node_a.vault, grant_id=grant, event="grant:use")
        if e["outcome"] == "allowed"
    )
    # One for one: every call the upstream received has exactly one allowed use event. (A use
    # may lack its hit: recorded, then its node died or the upstream was not reached.)
    assert {tag: uses[tag] for tag in hits} == dict.fromkeys(hits, 1)
    assert max(uses.values()) == 1
    report = verify(node_a.vault)
    assert report["ok"] is True, report
    assert all(TOKEN not in line for node in pair for line in node.log)
