"""Named leases: one process at a time runs a singleton loop (a sink's delivery, the alerter).

A lease is a row ``(name, owner, until)``. ``claim`` takes it when it is free, lapsed or already
ours, and extends it; a process that dies (kill -9) simply stops renewing, and another takes over
once ``until`` passes. The same SQL on SQLite and PostgreSQL: the conditional UPDATE is atomic on
both, so two claimants never both see rowcount 1. Times are epoch seconds from the caller (nodes
are expected to keep their clocks within a fraction of the lease length).
"""

from __future__ import annotations

import os
import socket

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaultgate.server.storage import upsert
from vaultgate.server.storage.tables import leases


def owner_id() -> str:
    """This process, as a lease owner: host, pid and a random part (a reused pid is another)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{os.urandom(4).hex()}"


def claim(conn: Connection, name: str, owner: str, *, now: float, ttl: float) -> bool:
    """Take or renew ``name`` for ``owner`` until ``now + ttl``; whether ``owner`` holds it."""
    values = {"name": name, "owner": owner, "until": now + ttl}
    insert = upsert.insert(conn, leases)
    if conn.execute(insert.values(values).on_conflict_do_nothing()).rowcount == 1:
        return True
    renewed = conn.execute(
        sa.update(leases)
        .where(leases.c.name == name, sa.or_(leases.c.owner == owner, leases.c.until < now))
        .values(owner=owner, until=now + ttl)
    )
    return renewed.rowcount == 1


def holds(name: str, owner: str) -> sa.ColumnElement[bool]:
    """A WHERE clause true only while ``owner`` holds ``name`` (guards a write made under it)."""
    return sa.exists().where(leases.c.name == name, leases.c.owner == owner)


def release(conn: Connection, name: str, owner: str) -> None:
    conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.owner == owner))
