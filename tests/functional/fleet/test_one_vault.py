"""Several workers and several nodes behave as one vault: replay, rate limits, changes.

Two fleets, each shared by the module: two nodes of two workers each on one PostgreSQL database,
and one node of three workers on SQLite. Every request opens a fresh connection, so the kernel
spreads them over a node's workers; a change is made through the first node and its effect
asserted on the last one, on the very next request after the change call returned.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from functional.fleet.nodes import Node, init_vault, start_node
from support import Upstream
from support.audit import events, verify
from support.injection import Tenant, error_of, sdk_call

OLD = "canary-fleet-old-Vt4Qm9"
NEW = "canary-fleet-new-Zp7Ks2"


@pytest.fixture(
    scope="module",
    params=["postgres-2-nodes-x-2-workers", "sqlite-1-node-x-3-workers"],
)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Node]]:
    data_dir = tmp_path_factory.mktemp("fleet") / "data"
    if request.param.startswith("postgres"):
        url: str | None = request.getfixturevalue("fleet_pg_url")
        shape = (2, 2)
    else:
        url, shape = None, (1, 3)
    init = init_vault(data_dir, url)
    nodes: list[Node] = []
    try:
        for _ in range(shape[0]):
            nodes.append(start_node(data_dir, init, url, workers=shape[1]))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _store(tenant: Tenant, upstream: Upstream, token: str = OLD, **policy: Any) -> dict[str, Any]:
    body = {
        "app_id": tenant.app_id,
        "name": f"s-{uuid.uuid4().hex[:10]}",
        "credential_type": "bearer",
        "credential": {"token": token},
        "allowed_hosts": [upstream.origin],
        "policy": policy,
    }
    with tenant.vault.admin() as admin:
        created = admin.post("/v1/secrets", json=body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def _proxy(node: Node, key: str, grant: str, tag: str) -> httpx.Response:
    """One transparent-proxy call on a fresh connection (any worker of ``node`` may take it)."""
    return httpx.get(
        f"{node.base_url}/proxy/{grant}/fleet/{tag}",
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
        timeout=30,
    )


def _hits(upstream: Upstream, tag: str) -> list[str]:
    """The bearer tokens the upstream received for ``tag`` (a test's own path)."""
    return [r.headers.get("authorization", "") for r in upstream.requests if f"/{tag}" in r.path]


def _warm(nodes: list[Node], key: str, grant: str, upstream: Upstream, tag: str) -> None:
    """Every node's workers have the key and the grant cached, and all say yes."""
    for node in nodes:
        for _ in range(6):
            assert _proxy(node, key, grant, tag).status_code == 200
    assert len(_hits(upstream, tag)) == 6 * len(nodes)


def test_a_replayed_signed_request_is_accepted_once_by_the_whole_fleet(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"replay-{uuid.uuid4().hex[:8]}")
    grant = _store(tenant, fleet_upstream)["grant_id"]
    tag = uuid.uuid4().hex
    payload = {"grant_id": grant, "method": "GET", "url": f"{fleet_upstream.origin}/{tag}"}
    # One capture: a fixed body, timestamp and nonce, signed once.
    stamp, nonce = int(time.time()), secrets.token_hex(16)

    def send(i: int) -> httpx.Response:
        node = fleet[i % len(fleet)]
        return sdk_call(node.vault, tenant.key, "/sdk/proxy", payload, now=stamp, nonce=nonce)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(16)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [401] * 15, [a.text for a in answers]
    assert {error_of(a) for a in answers if a.status_code == 401} == {"replayed_request"}
    assert len(_hits(fleet_upstream, tag)) == 1
    # The allowed twin: the same call with a fresh nonce goes through on every node.
    for node in fleet:
        fresh = sdk_call(node.vault, tenant.key, "/sdk/proxy", payload)
        assert fresh.status_code == 200, fresh.text
    assert len(_hits(fleet_upstream, tag)) == 1 + len(fleet)
    replays = events(fleet[-1].vault, grant_id=grant, event="grant:deny")
    assert {e["code"] for e in replays} <= {"replayed_request"}
    assert verify(fleet[0].vault)["ok"] is True


def test_a_10_per_60_s_grant_admits_exactly_10_across_the_fleet(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"rate-{uuid.uuid4().hex[:8]}")
    grant = _store(tenant, fleet_upstream, rate_limit={"requests": 10, "per_seconds": 60})
    tag = uuid.uuid4().hex

    def send(i: int) -> httpx.Response:
        return _proxy(fleet[i % len(fleet)], tenant.key, grant["grant_id"], tag)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(30)))
    assert sorted(a.status_code for a in answers) == [200] * 10 + [429] * 20
    assert len(_hits(fleet_upstream, tag)) == 10
    waits = [int(a.headers["retry-after"]) for a in answers if a.status_code == 429]
    # A place frees when the first admitted use leaves the window: under 60 s from now.
    assert all(1 <= wait <= 60 for wait in waits), waits


def test_a_key_limited_to_2_a_minute_is_held_to_2_by_the_whole_fleet(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    # Counted per worker, the fleet's 3 or 4 workers each gave the key its own 2 a minute.
    tenant = Tenant.create(fleet[0].vault, f"key-rate-{uuid.uuid4().hex[:8]}")
    grant = _store(tenant, fleet_upstream)["grant_id"]
    with fleet[0].vault.admin() as admin:
        made = admin.post(
            f"/v1/apps/{tenant.app_id}/keys", json={"name": "slow", "rate_limit_rpm": 2}
        )
    assert made.status_code == 201, made.text
    limited = made.json()["api_key"]
    tag = uuid.uuid4().hex

    def send(i: int) -> httpx.Response:
        return _proxy(fleet[i % len(fleet)], limited, grant, tag)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(24)))
    # The bucket refills one request every 30 s: a slow run may earn one more per 30 s taken.
    earned = int((time.monotonic() - started) // 30)
    allowed = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert 2 <= len(allowed) <= 2 + earned, [a.status_code for a in answers]
    assert {a.status_code for a in refused} == {429}
    assert {error_of(a) for a in refused} == {"rate_limit_exceeded"}
    assert all(a.json()["detail"]["scope"] == "key" for a in refused)
    assert all(1 <= int(a.headers["retry-after"]) <= 30 for a in refused)
    assert len(_hits(fleet_upstream, tag)) == len(allowed)
    # The allowed twin: the app's full key is not held to the limited key's rate.
    for i in range(6):
        assert _proxy(fleet[i % len(fleet)], tenant.key, grant, tag).status_code == 200


def test_clones_share_their_ancestors_budget_across_the_fleet(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"clone-rate-{uuid.uuid4().hex[:8]}")
    parent = _store(tenant, fleet_upstream, rate_limit={"requests": 6, "per_seconds": 3600})
    with fleet[0].vault.admin() as admin:
        made = admin.post(f"/v1/grants/{parent['grant_id']}/clone", json={"name": "c"})
    assert made.status_code == 201, made.text
    clone = made.json()["grant_id"]
    tag = uuid.uuid4().hex
    for i in range(4):
        assert _proxy(fleet[i % len(fleet)], tenant.key, parent["grant_id"], tag).status_code == 200
    through_clone = [_proxy(fleet[-1 - i % len(fleet)], tenant.key, clone, tag) for i in range(5)]
    assert [a.status_code for a in through_clone] == [200, 200, 429, 429, 429]
    assert len(_hits(fleet_upstream, tag)) == 6


def _change(node: Node, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    with node.vault.admin() as admin:
        answer = admin.request(method, path, json=body)
    assert answer.status_code in (200, 204), answer.text


@pytest.mark.parametrize("change", ["revoke-grant", "revoke-clone", "delete-secret", "policy"])
def test_a_grant_change_on_one_node_holds_for_the_next_request_on_another(
    fleet: list[Node], fleet_upstream: Upstream, change: str
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"change-{uuid.uuid4().hex[:8]}")
    secret = _store(tenant, fleet_upstream)
    grant = secret["grant_id"]
    if change == "revoke-clone":
        with fleet[0].vault.admin() as admin:
            grant = admin.post(f"/v1/grants/{grant}/clone", json={"name": "c"}).json()["grant_id"]
    tag = uuid.uuid4().hex
    _warm(fleet, tenant.key, grant, fleet_upstream, tag)
    if change in ("revoke-grant", "revoke-clone"):
        _change(fleet[0], "DELETE", f"/v1/grants/{grant}")
    elif change == "delete-secret":
        _change(fleet[0], "DELETE", f"/v1/secrets/{secret['secret_id']}")
    else:
        _change(fleet[0], "PATCH", f"/v1/grants/{grant}", {"policy": {"allowed_methods": ["POST"]}})
    expected = "method_not_allowed" if change == "policy" else "grant_revoked"
    for _ in range(6):
        refused = _proxy(fleet[-1], tenant.key, grant, tag)
        assert refused.status_code == 403, refused.text
        assert error_of(refused) == expected
    assert len(_hits(fleet_upstream, tag)) == 6 * len(fleet)


def test_a_key_revoked_on_one_node_is_refused_by_the_next_request_on_another(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"key-{uuid.uuid4().hex[:8]}")
    grant = _store(tenant, fleet_upstream)["grant_id"]
    tag = uuid.uuid4().hex
    _warm(fleet, tenant.key, grant, fleet_upstream, tag)
    with fleet[0].vault.admin() as admin:
        [key] = admin.get(f"/v1/apps/{tenant.app_id}/keys").json()["items"]
    _change(fleet[0], "DELETE", f"/v1/keys/{key['id']}")
    for _ in range(6):
        refused = _proxy(fleet[-1], tenant.key, grant, tag)
        assert refused.status_code == 401, refused.text
        assert error_of(refused) == "key_revoked"
    assert len(_hits(fleet_upstream, tag)) == 6 * len(fleet)


def test_a_rotation_on_one_node_is_what_the_next_request_on_another_injects(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    tenant = Tenant.create(fleet[0].vault, f"rotate-{uuid.uuid4().hex[:8]}")
    secret = _store(tenant, fleet_upstream)
    tag = uuid.uuid4().hex
    _warm(fleet, tenant.key, secret["grant_id"], fleet_upstream, tag)
    rotate = f"/v1/secrets/{secret['secret_id']}/rotate"
    _change(fleet[0], "POST", rotate, {"credential": {"token": NEW}})
    for _ in range(6):
        assert _proxy(fleet[-1], tenant.key, secret["grant_id"], tag).status_code == 200
    tokens = _hits(fleet_upstream, tag)
    assert tokens == [f"Bearer {OLD}"] * (6 * len(fleet)) + [f"Bearer {NEW}"] * 6


def test_the_change_counter_moves_with_every_invalidating_change_only(
    fleet: list[Node], fleet_upstream: Upstream
) -> None:
    """Creating things (or signing in) never makes the fleet drop its caches; changes do."""
    import sqlalchemy as sa

    from support.database import engine_of

    def count() -> int:
        with engine_of(fleet[0].vault) as engine, engine.connect() as conn:
            value = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'changes'")).scalar()
        return int(value)

    before = count()
    tenant = Tenant.create(fleet[0].vault, f"counter-{uuid.uuid4().hex[:8]}")
    grant = _store(tenant, fleet_upstream)["grant_id"]
    assert count() == before
    _change(fleet[0], "DELETE", f"/v1/grants/{grant}")
    assert count() == before + 1
