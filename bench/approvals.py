"""``python -m bench.approvals``: what a human approval costs, apart from the human.

Against one ``vaultgate serve`` (SQLite) and a local upstream, for ROUNDS held calls: the 202 of
the held call, and the time from the approver's click (the approve request) to the waiting
official client holding the provider's answer. Also the request path's price of the hold check
on a grant that holds nothing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import timeit
from datetime import UTC, datetime

import httpx

from bench import procs
from vaultgate.server.approvals.hold import check_hold
from vaultgate.server.auth.users import create_user
from vaultgate.server.policy import parse_policy
from vaultgate.server.storage.engine import create_engine

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
APPROVER = "approver@example.com"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms"


async def _rounds(vault: procs.VaultProc, origin: str) -> tuple[list[float], list[float]]:
    import alter_sdk
    from alter_sdk import HttpMethod

    os.environ["ALTER_BASE_URL"] = vault.base_url
    admin = httpx.AsyncClient(
        base_url=vault.base_url,
        trust_env=False,
        headers={"Authorization": f"Bearer {vault.admin_key}"},
    )
    held, answered = [], []
    async with alter_sdk.App(api_key=vault.app_key) as app, admin:
        for n in range(ROUNDS):
            started = time.perf_counter()
            pending = await app.proxy_request(
                HttpMethod.POST, f"{origin}/v1/r/{n}", grant_id=vault.grant_id, json={"n": n}
            )
            held.append(time.perf_counter() - started)
            waiter = asyncio.create_task(
                app.await_approval(str(pending.approval_id), timeout=60, poll_interval=1)
            )
            await asyncio.sleep(0.2)  # let the waiter park in its long poll (a bench, not a test)
            clicked = time.perf_counter()
            url = f"/v1/approvals/{pending.approval_id}/approve"
            (await admin.post(url, json={"approver": APPROVER})).raise_for_status()
            result = await waiter
            answered.append(time.perf_counter() - clicked)
            assert result.status_code == 200
    return held, answered


def _hold_check_ns() -> float:
    policies = (parse_policy({"allowed_methods": ["POST"]}), parse_policy({}))
    runs = 200_000
    seconds = timeit.timeit(lambda: check_hold(policies, "POST", "/v1/x"), number=runs)
    return seconds / runs * 1e9


def main() -> None:
    up_port, vault_port = procs_ports()
    upstream = procs.start_python_upstream(up_port)
    origin = f"http://127.0.0.1:{up_port}"
    vault = procs.start_vault(vault_port, origin, None)
    try:
        engine = create_engine(f"sqlite:///{vault.workdir / 'data' / 'vaultgate.db'}")
        create_user(engine, APPROVER, "a-long-password-1234", datetime.now(UTC))
        engine.dispose()
        with httpx.Client(
            base_url=vault.base_url,
            trust_env=False,
            headers={"Authorization": f"Bearer {vault.admin_key}"},
        ) as admin:
            policy = {"requires_approval": {"approvers": [APPROVER]}}
            admin.patch(f"/v1/grants/{vault.grant_id}", json={"policy": policy}).raise_for_status()
        held, answered = asyncio.run(_rounds(vault, origin))
    finally:
        vault.stop()
        upstream.terminate()
    print(f"held call answered 202:             {_ms(held)}  ({ROUNDS} rounds)")
    print(f"approve click to the client's answer: {_ms(answered)}")
    print(f"hold check on a grant holding nothing: {_hold_check_ns():.0f} ns a request")


def procs_ports() -> tuple[int, int]:
    from bench.__main__ import procs_free_port

    return procs_free_port(), procs_free_port()


if __name__ == "__main__":
    main()
