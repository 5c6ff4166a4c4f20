"""The approval tables: rows in, rows out, and the conditional updates that make moves atomic.

Every status change is ``UPDATE ... WHERE status = <expected>``: of two nodes (or threads) making
the same move, exactly one sees a row count of 1. That works alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaultgate.server.storage import tables as t

R = t.approval_requests
G = t.approval_gates


def insert(conn: Connection, row: dict[str, Any], gate_ids: list[str]) -> None:
    conn.execute(R.insert().values(row))
    conn.execute(
        G.insert(),
        [
            {"id": gate, "request_id": row["id"], "position": n, "status": "pending"}
            for n, gate in enumerate(gate_ids)
        ],
    )


def request_id_of(conn: Connection, approval_id: str) -> str | None:
    """The request an id names: its own (the group id) or one of its gates'."""
    found = conn.execute(sa.select(R.c.id).where(R.c.id == approval_id)).scalar_one_or_none()
    if found is not None:
        return str(found)
    gate = conn.execute(sa.select(G.c.request_id).where(G.c.id == approval_id)).scalar_one_or_none()
    return None if gate is None else str(gate)


def load(conn: Connection, request_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    query = sa.select(R).where(R.c.id == request_id)
    if for_update:
        query = query.with_for_update()  # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def gates(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(G).where(G.c.request_id == request_id).order_by(G.c.position)
    ).mappings()
    return [dict(r) for r in rows]


def gates_of(conn: Connection, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
    if request_ids:
        rows = conn.execute(
            sa.select(G).where(G.c.request_id.in_(request_ids)).order_by(G.c.position)
        ).mappings()
        for r in rows:
            out[r["request_id"]].append(dict(r))
    return out


def listing(
    conn: Connection,
    *,
    status: str | None,
    grant_id: str | None,
    app_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = sa.select(R).order_by(R.c.created_at.desc(), R.c.id).limit(limit)
    for column, value in ((R.c.status, status), (R.c.grant_id, grant_id), (R.c.app_id, app_id)):
        if value is not None:
            query = query.where(column == value)
    return [dict(r) for r in conn.execute(query).mappings()]


def move(conn: Connection, request_id: str, expect: str, **values: Any) -> bool:
    """Set ``values`` on the request only if its status is still ``expect``; whether it did."""
    done = conn.execute(
        R.update().where(R.c.id == request_id, R.c.status == expect).values(**values)
    )
    return bool(done.rowcount == 1)


def decide_gate(conn: Connection, gate_id: str, **values: Any) -> bool:
    done = conn.execute(
        G.update().where(G.c.id == gate_id, G.c.status == "pending").values(**values)
    )
    return bool(done.rowcount == 1)


def portal_user_exists(conn: Connection, email: str) -> bool:
    query = sa.select(t.portal_users.c.id).where(t.portal_users.c.email == email)
    return conn.execute(query).first() is not None


def in_group(conn: Connection, group: str, email: str) -> bool:
    query = sa.select(t.approver_groups.c.email).where(
        t.approver_groups.c.name == group, t.approver_groups.c.email == email
    )
    return conn.execute(query).first() is not None


def set_group(conn: Connection, name: str, members: list[str]) -> None:
    conn.execute(t.approver_groups.delete().where(t.approver_groups.c.name == name))
    if members:
        conn.execute(t.approver_groups.insert(), [{"name": name, "email": m} for m in members])


def groups(conn: Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    query = sa.select(t.approver_groups).order_by(
        t.approver_groups.c.name, t.approver_groups.c.email
    )
    for row in conn.execute(query).mappings():
        out.setdefault(row["name"], []).append(row["email"])
    return out
