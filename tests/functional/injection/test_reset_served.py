"""The early answer, through a real ``vaultgate serve`` on each event loop it can run.

`serve` runs on asyncio's own loop by default, where the answer an upstream sends before it
*resets* the connection mid-upload is read and relayed every time (egress/sockets.py). On
uvloop, which an operator can choose (``VAULTGATE_EVENT_LOOP=uvloop``), sockets are written
from C and that answer can be lost to a 502; the README says so. An early answer followed by an
orderly close, and a reset with no answer at all, read the same on both loops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from functional.security.served import Served, serve_vault
from support.injection import Tenant
from support.wire import REFUSAL, WAIT, WireUpstream, run_wire_upstream

RESETS = 50
LARGE = 8 << 20  # far more than the socket buffers hold: the vault is mid-write at the reset


@pytest.fixture(scope="module", params=["default", "uvloop"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    # "default": no VAULTGATE_EVENT_LOOP at all, what an operator gets without choosing.
    chosen = {} if request.param == "default" else {"VAULTGATE_EVENT_LOOP": request.param}
    data = Path(tmp_path_factory.mktemp(f"served-{request.param}")) / "data"
    with serve_vault(data, extra_env=chosen) as vault:
        yield vault


@pytest.fixture(scope="module")
def wire() -> Iterator[WireUpstream]:
    with run_wire_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def tenant_grant(served: Served, wire: WireUpstream) -> tuple[Tenant, str]:
    tenant = Tenant.create(served, "reset")
    body = {"credential_type": "bearer", "credential": {"token": "canary-reset-Qe81"}}
    return tenant, tenant.store(body, [wire.origin])


def _large_body() -> Iterator[bytes]:
    piece = b"r" * 65536
    for _ in range(LARGE // len(piece)):
        yield piece


def _post(served: Served, tenant_grant: tuple[Tenant, str], path: str) -> httpx.Response:
    tenant, grant = tenant_grant
    return httpx.post(
        f"{served.base_url}/proxy/{grant}{path}",
        content=_large_body(),
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Length": str(LARGE)},
        trust_env=False,
        timeout=WAIT,
    )


def test_an_early_413_then_a_close_is_relayed_on_either_loop(
    served: Served, tenant_grant: tuple[Tenant, str]
) -> None:
    answer = _post(served, tenant_grant, "/early-413")
    assert (answer.status_code, answer.content) == (413, REFUSAL)
    assert "x-vaultgate-error" not in answer.headers


def test_a_reset_without_an_answer_is_the_vaults_502_on_either_loop(
    served: Served, tenant_grant: tuple[Tenant, str]
) -> None:
    refused = _post(served, tenant_grant, "/reset")
    assert refused.status_code == 502
    assert refused.headers["x-vaultgate-error"] == "upstream_error"


# The default loop only: on uvloop this is the known loss the module's docstring describes.
@pytest.mark.parametrize("served", ["default"], indirect=True)
def test_by_default_an_early_413_before_a_reset_is_relayed_every_time(
    served: Served, tenant_grant: tuple[Tenant, str]
) -> None:
    assert "VAULTGATE_EVENT_LOOP" not in served.env
    seen: Counter[str] = Counter()
    for _ in range(RESETS):
        response = _post(served, tenant_grant, "/early-413-reset")
        relayed = response.content == REFUSAL and "x-vaultgate-error" not in response.headers
        seen[f"{response.status_code} {'relayed' if relayed else response.text[:80]}"] += 1
    assert seen == {"413 relayed": RESETS}
