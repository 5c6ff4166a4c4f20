"""A local client cannot claim another address with ``X-Forwarded-For``.

uvicorn, by default, believes that header from loopback and rewrites the client's address before
the vault sees it: any process on the vault's host could then pass a grant's ``ip_allow`` policy
and write whatever source address it liked into the audit trail. The vault reads the header only
from the proxies named in ``VAULTGATE_TRUSTED_PROXIES``. Each case calls the transparent proxy
from loopback with the same header: refused with nothing upstream where no proxy is trusted,
allowed (and recorded with the forwarded address) where loopback is the trusted proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Upstream, run_upstream, run_vault
from support.audit import wait_for_events
from support.injection import Tenant

TOKEN = "canary-forwarded-Zp41"
CLAIMED = "198.51.100.7"


@pytest.fixture
def origin() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


def _call(tmp_path: Path, origin: Upstream, env: dict[str, str]) -> tuple[int, str, str]:
    """(status, recorded source address, event) of one call claiming CLAIMED."""
    with run_vault(tmp_path / "data", extra_env=env) as vault:
        tenant = Tenant.create(vault)
        grant = tenant.store(
            {
                "credential_type": "bearer",
                "credential": {"token": TOKEN},
                "policy": {"ip_allow": ["198.51.100.0/24"]},
            },
            [origin.origin],
        )
        answer = httpx.get(
            f"{vault.base_url}/proxy/{grant}/v1/where",
            headers={"Authorization": f"Bearer {tenant.key}", "X-Forwarded-For": CLAIMED},
            trust_env=False,
            timeout=30,
        )
        event = "grant:use" if answer.status_code == 200 else "grant:deny"
        [record] = wait_for_events(vault, 1, grant_id=grant, event=event)
    assert TOKEN not in answer.text and TOKEN not in str(record)
    return answer.status_code, record["source_ip"], record.get("code") or ""


def test_an_untrusted_forwarded_for_is_ignored(tmp_path: Path, origin: Upstream) -> None:
    status, recorded, code = _call(tmp_path, origin, {})
    assert (status, code) == (403, "ip_not_allowed")
    assert recorded == "127.0.0.1"
    assert origin.requests == []


def test_a_trusted_proxys_forwarded_for_is_believed(tmp_path: Path, origin: Upstream) -> None:
    status, recorded, _ = _call(tmp_path, origin, {"VAULTGATE_TRUSTED_PROXIES": "127.0.0.1/32"})
    assert status == 200
    assert recorded == CLAIMED
    assert len(origin.requests) == 1
