"""Tampering with a real SQLite database file under a running vault: ``GET /v1/audit/verify``
and ``vaultgate audit verify`` (a subprocess) both name the first bad event.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from support import Upstream, Vault
from support.audit import events, verify, wait_until
from support.database import sqlite_path
from support.injection import Tenant
from vaultgate.server.audit.chain import event_hash
from vaultgate.server.storage.tables import audit_events

VAULTGATE = str(Path(sys.executable).with_name("vaultgate"))
Tamper = Callable[[Path, int], None]


def _busy_trail(vault: Vault, upstream: Upstream) -> int:
    """Admin changes, uses and denials; returns the number of events once all are written."""
    tenant = Tenant.create(vault)
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": "canary-verify-Gt5"},
            "policy": {"allowed_methods": ["GET"]},
        },
        [upstream.origin],
    )
    auth = {"Authorization": f"Bearer {tenant.key}"}
    for method in ("GET", "GET", "DELETE", "GET"):
        httpx.request(method, f"{vault.base_url}/proxy/{grant}/v1/x", headers=auth, trust_env=False)
    # 3 uses, 3 outcomes, 1 denial: wait for the background ones to land.
    wait_until(lambda: len(events(vault, grant_id=grant, event="grant:outcome")) == 3)
    wait_until(lambda: len(events(vault, grant_id=grant, event="grant:deny")) == 1)
    report = verify(vault)
    assert report["ok"], report
    return int(report["events"])


def _cli(vault: Vault, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(vault.data_dir),
        "VAULTGATE_ADMIN_KEY": vault.admin_key,
    }
    return subprocess.run(
        [VAULTGATE, "--url", vault.base_url, "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _sql(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run ``statements`` in one transaction with the sqlite3 module, as an intruder would."""
    with sqlite3.connect(path, timeout=10) as db:
        for statement, params in statements:
            db.execute(statement, params)


def _edit(path: Path, seq: int) -> None:
    _sql(path, ("UPDATE audit_events SET reason = 'nothing happened' WHERE seq = ?", (seq,)))


def _edit_and_rehash(path: Path, seq: int) -> None:
    """An attacker who knows the hash scheme but not the audit key: the row is read the way
    the vault reads it (typed columns), changed, and hashed again."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            query = sa.select(audit_events).where(audit_events.c.seq == seq)
            row = dict(conn.execute(query).one()._mapping)
            row["outcome"] = "denied"
            conn.execute(
                audit_events.update()
                .where(audit_events.c.seq == seq)
                .values(outcome="denied", hash=event_hash(row))
            )
    finally:
        engine.dispose()


def _delete(path: Path, seq: int) -> None:
    _sql(path, ("DELETE FROM audit_events WHERE seq = ?", (seq,)))


def _swap(path: Path, seq: int) -> None:
    _sql(
        path,
        ("UPDATE audit_events SET seq = -1 WHERE seq = ?", (seq,)),
        ("UPDATE audit_events SET seq = ? WHERE seq = ?", (seq, seq + 1)),
        ("UPDATE audit_events SET seq = ? WHERE seq = -1", (seq + 1,)),
    )


CASES: list[tuple[str, Tamper, str]] = [
    ("edited", _edit, "edited"),
    ("edited-and-rehashed", _edit_and_rehash, "not signed"),
    ("deleted", _delete, "missing"),
    ("swapped", _swap, "edited"),
]


@pytest.mark.parametrize(("tamper", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verify_names_the_first_tampered_event(
    tamper: Tamper, problem: str, sqlite_vault: Vault, upstream: Upstream
) -> None:
    total = _busy_trail(sqlite_vault, upstream)
    clean = _cli(sqlite_vault, "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["ok"] is True

    target = total // 2
    tamper(sqlite_path(sqlite_vault), target)

    report = verify(sqlite_vault)
    assert report["ok"] is False
    assert report["first_bad_seq"] == target
    assert problem in report["problem"]
    assert str(target) in report["problem"]

    result = _cli(sqlite_vault)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(rf"^first_bad_seq\s+{target}$", result.stdout, re.MULTILINE), result.stdout
    assert problem in result.stdout
    as_json = json.loads(_cli(sqlite_vault, "--json").stdout)
    assert (as_json["ok"], as_json["first_bad_seq"]) == (False, target)


def test_verify_catches_events_cut_from_the_end(sqlite_vault: Vault, upstream: Upstream) -> None:
    total = _busy_trail(sqlite_vault, upstream)
    _sql(sqlite_path(sqlite_vault), ("DELETE FROM audit_events WHERE seq = ?", (total,)))
    report = verify(sqlite_vault)
    assert report["ok"] is False
    assert report["first_bad_seq"] == total
    result = _cli(sqlite_vault, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["first_bad_seq"] == total
