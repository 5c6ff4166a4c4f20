"""Apps and API keys: create, list, revoke, and authenticate a presented key.

Authentication is on every request, so verified keys are cached for a short time; a revocation
on this node drops the cache entry at once, and every other worker and node stops trusting its
entry as soon as it sees the change count move (``fleet.changes``: within 0.1 s, and before any
use is recorded).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth import keys
from vaultgate.server.auth.keys import KeyKind, Principal
from vaultgate.server.clock import Clock
from vaultgate.server.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unprocessable
from vaultgate.server.fleet.changes import Changes
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did an administrative change, for the audit record."""

    key_id: str | None = None
    portal_user: str | None = None
    source_ip: str | None = None

    @classmethod
    def of(cls, principal: Principal, source_ip: str | None = None) -> Actor:
        return cls(key_id=principal.key_id, source_ip=source_ip)


def parse_expiry(raw: str | None, now: datetime) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Unprocessable("expires_at: not an ISO 8601 date-time", field="expires_at") from None
    if value.tzinfo is None:
        raise Unprocessable("expires_at: needs a time zone offset", field="expires_at")
    if value <= now:
        raise Unprocessable("expires_at: must be in the future", field="expires_at")
    return value


class KeyService:
    def __init__(
        self,
        engine: Engine,
        hash_key: bytes,
        audit: AuditSink,
        clock: Clock,
        cache_ttl: float,
        changes: Changes | None = None,
    ) -> None:
        self._engine = engine
        self._hash_key = hash_key
        self._audit = audit
        self._clock = clock
        self._ttl = cache_ttl
        self._changes = changes or Changes()
        # digest -> (expires, change count loaded under, principal, problem)
        self._cache: dict[str, tuple[float, int, Principal | None, str | None]] = {}

    # --- apps -------------------------------------------------------------------------------
    def create_app(self, name: str, actor: Actor) -> dict[str, Any]:
        now = self._clock()
        row: dict[str, Any] = {"id": str(uuid.uuid4()), "name": name, "created_at": now}
        with self._engine.begin() as conn:
            if conn.execute(sa.select(t.apps.c.id).where(t.apps.c.name == name)).first():
                raise Conflict(
                    f"name: an app named {name!r} exists", code="duplicate_name", field="name"
                )
            conn.execute(t.apps.insert().values(row))
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="app:create",
                    outcome="ok",
                    now=now,
                    app_id=row["id"],
                    **actor_fields(actor),
                ),
            )
        return row

    def list_apps(self) -> list[dict[str, Any]]:
        with reading(self._engine) as conn:
            rows = conn.execute(sa.select(t.apps).order_by(t.apps.c.created_at)).mappings()
            return [dict(r) for r in rows]

    def get_app(self, app_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(t.apps).where(t.apps.c.id == app_id)).mappings().first()
        if row is None:
            raise NotFound(f"app {app_id!r} not found", code="app_not_found", field="app_id")
        return dict(row)

    # --- keys -------------------------------------------------------------------------------
    def create_key(
        self,
        kind: KeyKind,
        name: str,
        actor: Actor,
        *,
        app_id: str | None = None,
        expires_at: datetime | None = None,
        on_insert: Callable[[sa.Connection, dict[str, Any]], None] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new key: returns the plaintext (shown once) and its stored metadata.

        ``on_insert`` writes what belongs with the key (its scoped-key controls) in the same
        transaction, so a key never exists without them."""
        if kind == "app":
            self.get_app(str(app_id))
        presented = keys.mint(kind)
        now = self._clock()
        row = {
            "id": str(uuid.uuid4()),
            "app_id": app_id,
            "kind": kind,
            "name": name,
            "key_hash": keys.key_hash(self._hash_key, presented),
            "hint": keys.hint(presented),
            "created_at": now,
            "expires_at": expires_at,
            "revoked_at": None,
            "last_used_at": None,
        }
        with self._engine.begin() as conn:
            conn.execute(t.api_keys.insert().values(row))
            if on_insert is not None:
                on_insert(conn, row)
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="key:create",
                    outcome="ok",
                    now=now,
                    app_id=app_id,
                    details={"key": row["id"], "kind": kind, "name": name},
                    **actor_fields(actor),
                ),
            )
        return presented, key_public(row)

    def list_keys(self, app_id: str) -> list[dict[str, Any]]:
        self.get_app(app_id)
        query = sa.select(t.api_keys).where(t.api_keys.c.app_id == app_id)
        with reading(self._engine) as conn:
            rows = conn.execute(query.order_by(t.api_keys.c.created_at)).mappings()
            return [key_public(dict(r)) for r in rows]

    def revoke_key(self, key_id: str, actor: Actor, *, allow_last_admin: bool = False) -> None:
        """Revoke any key. The last active admin key is refused unless ``allow_last_admin``.

        Remotely that refusal keeps the vault manageable; a local command (which has the data
        directory, and so can always mint a new admin key) may pass ``allow_last_admin``.
        """
        now = self._clock()
        with self._engine.begin() as conn:
            row = (
                conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound(f"key {key_id!r} not found", code="key_not_found")
            if row["kind"] == "admin" and actor.key_id == key_id:
                raise Forbidden("an admin key cannot revoke itself", code="forbidden")
            if row["kind"] == "admin" and not allow_last_admin:
                _refuse_last_admin(conn, key_id, now)
            if row["revoked_at"] is None:
                conn.execute(
                    t.api_keys.update().where(t.api_keys.c.id == key_id).values(revoked_at=now)
                )
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="key:revoke",
                    outcome="ok",
                    now=now,
                    app_id=row["app_id"],
                    details={"key": key_id},
                    **actor_fields(actor),
                ),
            )
        self._cache = {
            h: v for h, v in self._cache.items() if v[2] is None or v[2].key_id != key_id
        }

    def revoke_many(self, key_ids: list[str], actor: Actor, app_id: str | None) -> None:
        """Revoke several keys in one transaction (a key and the keys derived from it)."""
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                t.api_keys.update()
                .where(t.api_keys.c.id.in_(key_ids), t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="key:revoke",
                    outcome="ok",
                    now=now,
                    app_id=app_id,
                    details={"key": key_ids[0], "revoked": sorted(key_ids)},
                    **actor_fields(actor),
                ),
            )
        self._cache.clear()

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of a presented key; 401 with a code saying why otherwise."""
        if not presented or keys.kind_of(presented) is None:
            raise Unauthenticated("missing or malformed API key", code="invalid_key")
        digest = keys.key_hash(self._hash_key, presented)
        cached = self._cache.get(digest)
        seen = self._changes.current
        if cached is None or cached[0] < time.monotonic() or cached[1] < seen:
            # Tagged with the count known BEFORE the read: the row read is at least that new.
            loaded = self._load(t.api_keys.c.key_hash, digest, seen)
            cached = (time.monotonic() + self._ttl, seen, *loaded)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = cached
        return self._checked(cached[2], cached[3])

    def reload(self, principal: Principal) -> Principal:
        """``principal`` read afresh (past the cache): for a decision refused as stale."""
        seen = self._changes.current
        return self._checked(*self._load(t.api_keys.c.id, principal.key_id, seen))

    def _checked(self, principal: Principal | None, problem: str | None) -> Principal:
        if problem == "revoked":
            raise Unauthenticated("this API key has been revoked", code="key_revoked")
        if principal is None:
            raise Unauthenticated("unknown API key", code="invalid_key")
        if principal.expires_at is not None and principal.expires_at <= self._clock():
            raise Unauthenticated("this API key has expired", code="key_expired")
        return principal

    def _load(
        self, column: sa.Column[str], value: str, generation: int
    ) -> tuple[Principal | None, str | None]:
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(t.api_keys).where(column == value)).mappings().first()
            agent = None if row is None else _agent_of(conn, row["id"])
        if row is None:
            return None, None
        if row["revoked_at"] is not None:
            return None, "revoked"
        principal = Principal(
            row["id"], row["kind"], row["app_id"], row["name"], row["expires_at"], generation
        )
        if agent is not None:
            principal = dataclasses.replace(
                principal,
                agent_id=agent.id,
                agent_name=agent.name,
                agent_status=agent.status,
                key_deprecated=agent.deprecated_at is not None,
            )
        return principal, None

    def forget(self) -> None:
        """Drop this process's cached keys (an agent was suspended, resumed or deleted here)."""
        self._cache.clear()

    def list_admin_keys(self) -> list[dict[str, Any]]:
        """Every admin key, revoked ones included, oldest first (metadata, never a key)."""
        query = sa.select(t.api_keys).where(t.api_keys.c.kind == "admin")
        with reading(self._engine) as conn:
            rows = conn.execute(query.order_by(t.api_keys.c.created_at)).mappings()
            return [key_public(dict(r)) for r in rows]

    def get_admin_key(self, key_id: str) -> dict[str, Any]:
        query = sa.select(t.api_keys).where(t.api_keys.c.id == key_id, t.api_keys.c.kind == "admin")
        with reading(self._engine) as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"admin key {key_id!r} not found", code="key_not_found")
        return key_public(dict(row))

    def has_admin_key(self) -> bool:
        with reading(self._engine) as conn:
            query = sa.select(sa.func.count()).where(t.api_keys.c.kind == "admin")
            return bool(conn.execute(query).scalar())


def _agent_of(conn: sa.Connection, key_id: str) -> Any:
    """The managed agent a key belongs to (id, name, status, the key's deprecation), if any."""
    a, k = t.agents.c, t.agent_keys.c
    query = (
        sa.select(a.id, a.name, a.status, k.deprecated_at)
        .select_from(t.agent_keys.join(t.agents, a.id == k.agent_id))
        .where(k.key_id == key_id)
    )
    return conn.execute(query).first()


def _refuse_last_admin(conn: sa.Connection, key_id: str, now: datetime) -> None:
    """409 when no other admin key would stay usable (not revoked, not expired).

    The rows are locked so that two admin keys revoking each other at once cannot both pass.
    """
    c = t.api_keys.c
    others = conn.execute(
        sa.select(c.id, c.expires_at)
        .where(c.kind == "admin", c.revoked_at.is_(None), c.id != key_id)
        .with_for_update()
    ).all()
    if not any(expires is None or expires > now for _, expires in others):
        raise Conflict(
            "this is the last usable admin key: create another first "
            "(`vaultgate admin-keys create`), or revoke it with `vaultgate admin-keys revoke "
            "--local` on the vault's data directory",
            code="last_admin_key",
        )


def key_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "id",
            "app_id",
            "kind",
            "name",
            "hint",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        )
    }


def actor_fields(actor: Actor) -> dict[str, Any]:
    return {"key_id": actor.key_id, "portal_user": actor.portal_user, "source_ip": actor.source_ip}
