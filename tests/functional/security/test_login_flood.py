"""An unauthenticated sign-in flood cannot starve the vault, nor out-guess the throttle.

Two workers of a real ``serve`` on SQLite (the default): 200 concurrent sign-ins against the
admin account from 50 addresses (the vault trusts loopback as its reverse proxy, so each carries
its address in ``X-Forwarded-For``). Meanwhile the official client's proxied requests must keep
being answered, and the whole flood may get no more than the throttle's limit of verdicts.
"""

from __future__ import annotations

import asyncio
import re

import alter_sdk
import httpx
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod

from functional.security.served import Served
from support import Upstream
from support.injection import Tenant
from vaultgate.server.portal.throttle import MAX_PER_EMAIL
from vaultgate.server.storage.engine import create_engine
from vaultgate.server.storage.tables import audit_events

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SIGN_INS, ADDRESSES = 200, 50


def _login_form(base_url: str) -> tuple[str, str]:
    """A session cookie and its CSRF token, read off the login page as a browser would."""
    with httpx.Client(base_url=base_url, trust_env=False) as browser:
        page = browser.get("/portal/login")
        match = CSRF.search(page.text)
        assert match
        return f"vaultgate_portal={browser.cookies['vaultgate_portal']}", match[1]


async def _flood(vault: Served) -> list[int]:
    cookie, csrf = _login_form(vault.base_url)
    limits = httpx.Limits(max_connections=SIGN_INS, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=vault.base_url, trust_env=False, timeout=120, limits=limits
    ) as client:

        async def sign_in(i: int) -> int:
            answer = await client.post(
                "/portal/login",
                data={"csrf": csrf, "email": vault.portal_user, "password": f"guess-{i:06d}-x"},
                headers={"cookie": cookie, "x-forwarded-for": f"198.51.100.{i % ADDRESSES + 1}"},
            )
            return answer.status_code

        return list(await asyncio.gather(*(sign_in(i) for i in range(SIGN_INS))))


async def _proxy_until(done: asyncio.Event, key: str, grant: str, origin: Upstream) -> list[int]:
    statuses: list[int] = []
    async with alter_sdk.App(api_key=key) as app:
        while not done.is_set() or not statuses:
            try:
                result = await app.proxy_request(
                    HttpMethod.GET, f"{origin.origin}/v1/during-flood", grant_id=grant
                )
                statuses.append(result.status_code)
            except alter_sdk.BackendError as exc:  # a 503 from the vault lands here
                statuses.append(int(exc.details.get("status_code") or 0) or 503)
    return statuses


def _verdicts_audited(vault: Served) -> int:
    engine = create_engine(f"sqlite:///{vault.data_dir / 'vaultgate.db'}")
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(audit_events.c.event == "portal:login_failed")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


async def test_a_login_flood_neither_stalls_proxying_nor_beats_the_throttle(
    served: Served, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", served.base_url)
    tenant = Tenant.create(served)
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": "canary-flood-7Qa"}},
        [upstream.origin],
    )
    done = asyncio.Event()
    proxying = asyncio.create_task(_proxy_until(done, tenant.key, grant, upstream))
    try:
        statuses = await _flood(served)
    finally:
        done.set()
    proxied = await asyncio.wait_for(proxying, timeout=120)

    assert proxied
    assert set(proxied) == {200}, proxied
    assert len(upstream.requests) == len(proxied)
    verdicts = statuses.count(401) + statuses.count(303)
    assert set(statuses) <= {401, 429}, sorted(set(statuses))
    assert 1 <= verdicts <= MAX_PER_EMAIL
    assert _verdicts_audited(served) == statuses.count(401)


def test_the_right_password_signs_in_when_nobody_floods(served: Served) -> None:
    """The twin: the same sign-in path, through the same proxy header, lets the owner in."""
    cookie, csrf = _login_form(served.base_url)
    answer = httpx.post(
        f"{served.base_url}/portal/login",
        data={"csrf": csrf, "email": served.portal_user, "password": served.portal_password},
        headers={"cookie": cookie, "x-forwarded-for": "198.51.100.7"},
        trust_env=False,
        timeout=60,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/secrets"
