"""Fair and bounded: one tenant's slow upstream or departed clients cost the others nothing, and
connections that never finish their headers are closed.

Every wait is for an event (the upstream's connection count, a socket closing), never for time;
the small header deadline of the slowloris vault is a setting, not a measurement.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Vault, run_vault
from support.audit import events, wait_until
from support.injection import Tenant
from support.wire import WAIT, WireUpstream, run_wire_upstream
from vaultgate.injection.signing import sign_request
from vaultgate.server.settings import Settings

TOKEN = "canary-fairness-Wd46Np"
DEFAULTS = Settings()
PER_HOST = DEFAULTS.upstream_connections_per_host
IN_FLIGHT = DEFAULTS.max_inflight_per_grant
SLOW_CALLS = 300


@pytest.fixture
def slow() -> Iterator[WireUpstream]:
    with run_wire_upstream() as server:
        yield server


@pytest.fixture
def fast() -> Iterator[WireUpstream]:
    with run_wire_upstream() as server:
        yield server


def _grant(tenant: Tenant, upstream: WireUpstream) -> str:
    body = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    return tenant.store(body, [upstream.origin])


def _port(vault: Vault) -> int:
    return int(vault.base_url.rsplit(":", 1)[1])


async def test_a_slow_tenant_cannot_starve_another(
    shared_vault: Vault, slow: WireUpstream, fast: WireUpstream
) -> None:
    hog, other = Tenant.create(shared_vault, "hog"), Tenant.create(shared_vault, "other")
    hog_grant, other_grant = _grant(hog, slow), _grant(other, fast)
    limits = httpx.Limits(max_connections=SLOW_CALLS + 10)
    timeout = httpx.Timeout(120)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        calls = [
            asyncio.ensure_future(
                client.get(
                    f"{shared_vault.base_url}/proxy/{hog_grant}/hang/{i}",
                    headers={"Authorization": f"Bearer {hog.key}"},
                )
            )
            for i in range(SLOW_CALLS)
        ]
        await asyncio.to_thread(slow.wait_for, lambda s: s.hanging == PER_HOST)
        # Every call beyond the grant's share comes back at once, while the rest hang.
        while len(_refused(calls)) < SLOW_CALLS - IN_FLIGHT:
            pending = [c for c in calls if not c.done()]
            finished, _ = await asyncio.wait(
                pending, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED
            )
            assert finished, "the calls beyond the grant's share were not answered"
        refused = _refused(calls)
        # The calls inside the grant's share but beyond the host's connections wait for a pooled
        # connection, and that wait is bounded by the connect timeout: on a slow host they may
        # come back 504 before the loop above is done. Nothing else may have come back.
        queued = [c.result() for c in calls if c.done() and c.result().status_code != 429]
        assert len(queued) <= IN_FLIGHT - PER_HOST
        assert all(r.status_code == 504 and "in time" in r.text for r in queued), queued
        # The other app has its own connection, as another app would: reusing one of the hog's
        # idle keep-alive connections would race the vault closing it after the header timeout.
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as own:
            answer = await own.get(
                f"{shared_vault.base_url}/proxy/{other_grant}/echo",
                headers={"Authorization": f"Bearer {other.key}"},
            )
        assert answer.status_code == 200, answer.text
        assert slow.hanging == PER_HOST  # the hog's calls were still hanging meanwhile
        slow.release()
        answers = await asyncio.gather(*calls)
    assert len(refused) == SLOW_CALLS - IN_FLIGHT
    detail = refused[0].json()["detail"]
    assert detail["error"] == "concurrency_limit_exceeded"
    assert "VAULTGATE_MAX_INFLIGHT_PER_GRANT" in detail["message"]
    assert [r.status_code for r in answers].count(429) == SLOW_CALLS - IN_FLIGHT
    assert slow.max_open <= PER_HOST
    denials = [
        e
        for e in events(shared_vault, grant_id=hog_grant, event="grant:deny")
        if e["code"] == "concurrency_limit_exceeded"
    ]
    assert denials, "the refusals were not audited"


def _refused(calls: list[asyncio.Future[httpx.Response]]) -> list[httpx.Response]:
    return [c.result() for c in calls if c.done() and c.result().status_code == 429]


def _sdk_proxy_bytes(vault: Vault, key: str, url: str, grant: str) -> bytes:
    body = json.dumps({"method": "GET", "url": url, "grant_id": grant}).encode()
    signed = sign_request(
        key, "POST", "/sdk/proxy", body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    headers = {**signed, "x-api-key": key, "content-type": "application/json"}
    head = "POST /sdk/proxy HTTP/1.1\r\nHost: vault\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize("mode", ["transparent", "proxy"])
def test_a_client_that_leaves_releases_its_upstream_connection(
    mode: str, shared_vault: Vault, tenant: Tenant, slow: WireUpstream
) -> None:
    grant = _grant(tenant, slow)
    if mode == "transparent":
        request = (
            f"GET /proxy/{grant}/hang HTTP/1.1\r\nHost: vault\r\n"
            f"Authorization: Bearer {tenant.key}\r\n\r\n"
        ).encode()
    else:
        request = _sdk_proxy_bytes(shared_vault, tenant.key, f"{slow.origin}/hang", grant)
    with socket.create_connection(("127.0.0.1", _port(shared_vault)), timeout=WAIT) as sock:
        sock.sendall(request)
        slow.wait_for(lambda s: s.hanging == 1)
    # The caller is gone; the vault must drop the upstream request now, not at its timeout.
    slow.wait_for(lambda s: s.hanging == 0 and s.open_connections == 0)
    outcome: list[dict[str, object]] = []

    def recorded() -> bool:
        outcome[:] = events(shared_vault, grant_id=grant, event="grant:outcome")
        return bool(outcome)

    wait_until(recorded)
    assert outcome[0]["code"] == "client_disconnected"
    # The allowed twin: a caller that stays gets its answer from the same upstream.
    slow.release()
    answer = httpx.get(
        f"{shared_vault.base_url}/proxy/{grant}/hang",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
        timeout=WAIT,
    )
    assert answer.status_code == 200


# --- the server's own limits ----------------------------------------------------------------------


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[Vault]:
    env = {"VAULTGATE_HEADER_TIMEOUT": "0.5", "VAULTGATE_MAX_CONNECTIONS": "200"}
    with run_vault(tmp_path / "data", extra_env=env) as vault:
        yield vault


def _closed_by_server(sock: socket.socket) -> bool:
    """Send the next byte of a never-ending header; True once the server has closed."""
    try:
        sock.sendall(b"X")
        sock.settimeout(0.05)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slowloris_connections_are_closed(strict_server: Vault, slow: WireUpstream) -> None:
    tenant = Tenant.create(strict_server)
    grant = _grant(tenant, slow)
    port = _port(strict_server)
    # A request whose headers came in time is never cut, however long its answer takes.
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as patient:
        patient.sendall(
            f"GET /proxy/{grant}/hang HTTP/1.1\r\nHost: v\r\n"
            f"Authorization: Bearer {tenant.key}\r\n\r\n".encode()
        )
        slow.wait_for(lambda s: s.hanging == 1)
        lorises = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(50)]
        for sock in lorises:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: v\r\nX-Slow: ")
        open_ = list(lorises)
        deadline = time.monotonic() + WAIT
        while open_ and time.monotonic() < deadline:
            open_ = [sock for sock in open_ if not _closed_by_server(sock)]
        for sock in lorises:
            sock.close()
        assert open_ == [], f"{len(open_)} slowloris connections were left open"
        slow.release()
        patient.settimeout(WAIT)
        assert patient.recv(65536).startswith(b"HTTP/1.1 200 ")
    # And a plain request on a fresh connection is served.
    assert httpx.get(f"{strict_server.base_url}/healthz", trust_env=False).status_code == 200


# httpx's pool (the official client's) keeps an idle connection 5 s and then drops it.
CLIENT_KEEPALIVE = 5.0


def test_an_idle_connection_outlives_the_clients_keepalive_expiry(shared_vault: Vault) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: v\r\n\r\n"
    with socket.create_connection(("127.0.0.1", _port(shared_vault)), timeout=WAIT) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Idle for as long as a client keeps it: the vault must not be closing it right then
        # (uvicorn's own default closed it at exactly 5 s). What is waited for is the idleness.
        time.sleep(CLIENT_KEEPALIVE + 0.5)
        sock.settimeout(0.05)
        with pytest.raises(TimeoutError):  # nothing to read: no end of stream, no reset
            sock.recv(1)
        sock.settimeout(WAIT)
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_connections_past_the_cap_are_answered_503(tmp_path: Path) -> None:
    env = {"VAULTGATE_MAX_CONNECTIONS": "5", "VAULTGATE_HEADER_TIMEOUT": "600"}
    with run_vault(tmp_path / "data", extra_env=env) as vault:
        port = _port(vault)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(5)]
        try:
            # The server has accepted all five once a request on one of them is answered.
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: v\r\n\r\n")
            assert idle[0].recv(65536).startswith(b"HTTP/1.1 200 ")
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as extra:
                answer = b""
                while chunk := extra.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"too_many_connections" in answer
        finally:
            for sock in idle:
                sock.close()

        def served() -> bool:
            try:
                return httpx.get(f"{vault.base_url}/healthz", trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(served)  # once the idle ones have gone, the twin is served


def test_a_websocket_upgrade_through_the_proxy_is_a_clear_501(
    shared_vault: Vault, tenant: Tenant, slow: WireUpstream
) -> None:
    grant = _grant(tenant, slow)
    handshake = (
        f"GET /proxy/{grant}/socket HTTP/1.1\r\nHost: vault\r\n"
        f"Authorization: Bearer {tenant.key}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", _port(shared_vault)), timeout=WAIT) as sock:
        sock.sendall(handshake.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or b"}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 501 "), answer[:200]
    assert b"websocket_not_supported" in answer
    assert slow.requests == []
