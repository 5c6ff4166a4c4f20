"""Managed agents of an app and their keys: create, list, update, suspend, resume, delete;
mint, list, deprecate, undeprecate and revoke keys.

An agent's keys are ordinary app keys of its app, linked in ``agent_keys``; ``KeyService`` loads
the link with the key, so every request made with one carries the verified agent. Suspending,
resuming or deleting an agent and (un)deprecating a key are invalidating changes (fleet.changes),
so every worker and node stops trusting what it cached about those keys.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.agents.models import NewAgent, agent_view, key_view
from vaultgate.server.audit import events as ev
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, KeyService, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.errors import Conflict, NotFound
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

MAX_LIVE_KEYS: Final = 10
_STATUS_EVENTS: Final = {"inactive": ev.AGENT_SUSPEND, "active": ev.AGENT_RESUME}


def _not_found() -> NotFound:
    return NotFound("agent not found", code="agent_not_found")


class AgentService:
    def __init__(self, engine: Engine, keys: KeyService, sink: AuditSink, clock: Clock) -> None:
        self._engine = engine
        self._keys = keys
        self._sink = sink
        self._clock = clock

    # --- agents -------------------------------------------------------------------------------
    def create(self, app_id: str, new: NewAgent, actor: Actor) -> dict[str, Any]:
        agent_id = str(uuid.uuid4())
        row: dict[str, Any] = {
            "id": agent_id,
            "app_id": app_id,
            "name": new.name,
            "display_name": new.display_name,
            "type": new.type,
            "status": "active",
            "scopes": new.scopes,
            "attributes": new.metadata,
            "version": 1,
            "created_at": self._clock(),
            "revoked_at": None,
        }

        def insert(conn: sa.Connection, key: dict[str, Any]) -> None:
            if _live_named(conn, app_id, new.name) is not None:
                raise Conflict(
                    f"an agent named {new.name!r} exists in this app",
                    code="agent_name_exists",
                    field="name",
                )
            conn.execute(t.agents.insert().values(row))
            conn.execute(t.agent_keys.insert().values(key_id=key["id"], agent_id=agent_id))
            self._event(conn, ev.AGENT_CREATE, row, actor)

        api_key, key = self._keys.create_key(
            "app", f"{new.name}-1", actor, app_id=app_id, on_insert=insert
        )
        return {**agent_view(row, None), "api_key": api_key, "key_id": key["id"]}

    def list_agents(
        self, app_id: str, *, name: str | None, include_revoked: bool, limit: int, offset: int
    ) -> dict[str, Any]:
        a = t.agents.c
        where = [a.app_id == app_id]
        if name is not None:
            where += [a.name == name, a.status != "revoked"]
        elif not include_revoked:
            where.append(a.status != "revoked")
        with reading(self._engine) as conn:
            total = conn.execute(sa.select(sa.func.count()).where(*where)).scalar_one()
            query = sa.select(t.agents).where(*where).order_by(a.created_at, a.id)
            rows = [dict(r) for r in conn.execute(query.limit(limit).offset(offset)).mappings()]
            used = _last_used(conn, [r["id"] for r in rows])
        return {
            "items": [agent_view(r, used.get(r["id"])) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(rows) < total,
        }

    def get(self, app_id: str, agent_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            row = _agent(conn, app_id, agent_id)
            return agent_view(row, _last_used(conn, [agent_id]).get(agent_id))

    def update(
        self, app_id: str, agent_id: str, changes: dict[str, Any], version: int | None, actor: Actor
    ) -> dict[str, Any]:
        with self._engine.begin() as conn:
            row = _agent(conn, app_id, agent_id, lock=True)
            if row["status"] == "revoked":
                raise Conflict("this agent is deleted", code="agent_revoked")
            if version is not None and version != row["version"]:
                raise Conflict(
                    f"the agent is at version {row['version']}, not {version}: read it again",
                    code="agent_concurrent_update",
                )
            changed = {k: v for k, v in changes.items() if row[k] != v}
            if changed:
                row = {**row, **changed, "version": row["version"] + 1}
                conn.execute(
                    t.agents.update()
                    .where(t.agents.c.id == agent_id)
                    .values(**changed, version=row["version"])
                )
                event = _STATUS_EVENTS.get(changed.get("status", ""), ev.AGENT_UPDATE)
                self._event(conn, event, row, actor, fields=sorted(changed))
            used = _last_used(conn, [agent_id])
        self._keys.forget()
        return agent_view(row, used.get(agent_id))

    def delete(self, app_id: str, agent_id: str, actor: Actor) -> dict[str, Any]:
        """Revoke the agent and every key of it, in one transaction (idempotent)."""
        now = self._clock()
        with self._engine.begin() as conn:
            row = _agent(conn, app_id, agent_id, lock=True)
            if row["status"] != "revoked":
                row = {**row, "status": "revoked", "revoked_at": now, "version": row["version"] + 1}
                conn.execute(
                    t.agents.update()
                    .where(t.agents.c.id == agent_id)
                    .values(status="revoked", revoked_at=now, version=row["version"])
                )
                keys = sa.select(t.agent_keys.c.key_id).where(t.agent_keys.c.agent_id == agent_id)
                conn.execute(
                    t.api_keys.update()
                    .where(t.api_keys.c.id.in_(keys), t.api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                self._event(conn, ev.AGENT_REVOKE, row, actor)
            used = _last_used(conn, [agent_id])
        self._keys.forget()
        return agent_view(row, used.get(agent_id))

    # --- keys ---------------------------------------------------------------------------------
    def mint_key(self, app_id: str, agent_id: str, actor: Actor) -> dict[str, Any]:
        with reading(self._engine) as conn:
            row = _usable(conn, app_id, agent_id)
            count = len(_keys_of(conn, agent_id))

        def insert(conn: sa.Connection, key: dict[str, Any]) -> None:
            live = [k for k in _keys_of(conn, agent_id) if k["revoked_at"] is None]
            if len(live) >= MAX_LIVE_KEYS:
                raise Conflict(
                    f"an agent holds at most {MAX_LIVE_KEYS} unrevoked keys: revoke one first",
                    code="agent_key_limit_reached",
                )
            conn.execute(t.agent_keys.insert().values(key_id=key["id"], agent_id=agent_id))

        api_key, key = self._keys.create_key(
            "app", f"{row['name']}-{count + 1}", actor, app_id=app_id, on_insert=insert
        )
        return {**key_view({**key, "deprecated_at": None}), "api_key": api_key}

    def list_keys(self, app_id: str, agent_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            _agent(conn, app_id, agent_id)
            return {"items": [key_view(k) for k in _keys_of(conn, agent_id)]}

    def set_deprecated(
        self, app_id: str, agent_id: str, key_id: str, deprecated: bool, actor: Actor
    ) -> dict[str, Any]:
        """Deprecate (still works, flagged ``X-Alter-Key-Deprecated``) or undeprecate a key."""
        with self._engine.begin() as conn:
            _usable(conn, app_id, agent_id)
            key = _key_of(conn, agent_id, key_id)
            if key["revoked_at"] is not None:
                raise Conflict("this key is revoked, which is final", code="key_revoked")
            if (key["deprecated_at"] is not None) != deprecated:
                key["deprecated_at"] = self._clock() if deprecated else None
                conn.execute(
                    t.agent_keys.update()
                    .where(t.agent_keys.c.key_id == key_id)
                    .values(deprecated_at=key["deprecated_at"])
                )
                event = ev.KEY_DEPRECATE if deprecated else ev.KEY_UNDEPRECATE
                self._key_event(conn, event, app_id, agent_id, key_id, actor)
        self._keys.forget()
        return key_view(key)

    def revoke_key(
        self, app_id: str, agent_id: str, key_id: str, force: bool, actor: Actor
    ) -> dict[str, Any]:
        with reading(self._engine) as conn:
            _usable(conn, app_id, agent_id)
            key = _key_of(conn, agent_id, key_id)
            others = [
                k for k in _keys_of(conn, agent_id) if k["revoked_at"] is None and k["id"] != key_id
            ]
        if key["revoked_at"] is not None:
            return key_view(key)
        if not others and not force:
            raise Conflict(
                "this is the agent's last unrevoked key; pass force=true to revoke it anyway",
                code="last_active_key",
            )
        self._keys.revoke_key(key_id, actor)
        with reading(self._engine) as conn:
            return key_view(_key_of(conn, agent_id, key_id))

    # --- audit --------------------------------------------------------------------------------
    def _event(
        self,
        conn: sa.Connection,
        event: str,
        row: dict[str, Any],
        actor: Actor,
        fields: list[str] | None = None,
    ) -> None:
        details: dict[str, Any] = {"agent": {"id": row["id"], "name": row["name"]}}
        if fields:
            details["fields"] = fields
        self._sink.append(
            conn,
            AuditEvent.new(
                event=event,
                outcome="ok",
                now=self._clock(),
                app_id=row["app_id"],
                details=details,
                **actor_fields(actor),
            ),
        )

    def _key_event(
        self, conn: sa.Connection, event: str, app_id: str, agent_id: str, key_id: str, actor: Actor
    ) -> None:
        self._sink.append(
            conn,
            AuditEvent.new(
                event=event,
                outcome="ok",
                now=self._clock(),
                app_id=app_id,
                details={"key": key_id, "agent": {"id": agent_id}},
                **actor_fields(actor),
            ),
        )


def _agent(
    conn: sa.Connection, app_id: str, agent_id: str, *, lock: bool = False
) -> dict[str, Any]:
    """The app's agent; another app's agent answers exactly like one that does not exist."""
    query = sa.select(t.agents).where(t.agents.c.id == agent_id, t.agents.c.app_id == app_id)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise _not_found()
    return dict(row)


def _usable(conn: sa.Connection, app_id: str, agent_id: str) -> dict[str, Any]:
    """An agent whose keys can still change: a deleted one reads as not found (as the client)."""
    row = _agent(conn, app_id, agent_id)
    if row["status"] == "revoked":
        raise _not_found()
    return row


def _live_named(conn: sa.Connection, app_id: str, name: str) -> str | None:
    a = t.agents.c
    query = sa.select(a.id).where(a.app_id == app_id, a.name == name, a.status != "revoked")
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def _keys_of(conn: sa.Connection, agent_id: str) -> list[dict[str, Any]]:
    k, ak = t.api_keys.c, t.agent_keys.c
    query = (
        sa.select(t.api_keys, ak.deprecated_at)
        .select_from(t.api_keys.join(t.agent_keys, ak.key_id == k.id))
        .where(ak.agent_id == agent_id)
        .order_by(k.created_at, k.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def _key_of(conn: sa.Connection, agent_id: str, key_id: str) -> dict[str, Any]:
    for key in _keys_of(conn, agent_id):
        if key["id"] == key_id:
            return key
    raise NotFound("this agent has no such key", code="key_not_found")


def _last_used(conn: sa.Connection, agent_ids: list[str]) -> dict[str, datetime]:
    """When each agent last used any of its keys (``api_keys.last_used_at``)."""
    if not agent_ids:
        return {}
    k, ak = t.api_keys.c, t.agent_keys.c
    query = (
        sa.select(ak.agent_id, sa.func.max(k.last_used_at))
        .select_from(t.agent_keys.join(t.api_keys, ak.key_id == k.id))
        .where(ak.agent_id.in_(agent_ids))
        .group_by(ak.agent_id)
    )
    return {agent: used for agent, used in conn.execute(query).all() if used is not None}
