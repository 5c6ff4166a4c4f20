"""``SyncVault``'s outcome reports against the running vault: many caller threads, one report
thread sending pipelined batches, and every report recorded once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from support import Upstream
from support.audit import events
from support.injection import Tenant
from vaultgate import SyncVault

THREADS = 8
CALLS = 40
WAIT = 120.0  # generous: the machine is shared; nothing here measures time


def test_eight_threads_in_a_loop_lose_no_report_and_none_is_recorded_twice(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": "canary-reports-Jd73"}},
        [origin.origin],
    )
    errors: list[BaseException] = []
    with SyncVault(api_key=tenant.key, base_url=tenant.vault.base_url) as vault:

        def calls() -> None:
            try:
                for n in range(CALLS):
                    vault.request("GET", f"{origin.origin}/r/{n}", grant_id=grant)
            except BaseException as exc:  # seen by the test, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=calls) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert errors == []
    assert (vault.pending_reports, vault.dropped_reports, vault.failed_reports) == (0, 0, 0)
    # close() returned after the vault's 202 for each: each one is committed by then.
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    assert len(outcomes) == THREADS * CALLS
    assert all(o["outcome"] == "ok" and o["mode"] == "retrieve" for o in outcomes)
