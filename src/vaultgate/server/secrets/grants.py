"""Grants: show, re-police, clone with a TTL (only ever narrower), revoke with descendants.

``resolve`` is the request path's view of a grant: the chain up to the root, the secret's rules
and hosts, all read once and cached.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.injection.credential import CredentialType
from vaultgate.injection.rules import InjectionRules
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.egress.urls import HostPattern, parse_allowed_host
from vaultgate.server.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from vaultgate.server.etags import entity_tag
from vaultgate.server.policy import Policy, check_narrower, merge_for_clone, parse_policy
from vaultgate.server.secrets.cache import GrantCache
from vaultgate.server.secrets.errors import store_reads
from vaultgate.server.secrets.models import GrantClone
from vaultgate.server.secrets.specs import rules_from_doc
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

MAX_DEPTH = 5


@dataclass(frozen=True, slots=True)
class GrantContext:
    """Everything a request needs to decide and inject, without the credential itself."""

    grant_id: str
    app_id: str
    secret_id: str
    secret_version: int
    credential_type: CredentialType
    provider: str | None
    rules: InjectionRules
    hosts: tuple[HostPattern, ...]
    aws: dict[str, str] | None
    policies: tuple[Policy, ...]  # this grant's first, then each ancestor's
    revoked: bool
    expires_at: datetime | None
    lineage: tuple[str, ...] = ()  # the grant ids of ``policies``, in the same order
    generation: int = 0  # the change count known before it was read (fleet.changes)

    @property
    def proxy_only(self) -> bool:
        return any(p.proxy_only for p in self.policies)


class GrantService:
    def __init__(self, engine: Engine, audit: AuditSink, clock: Clock, cache: GrantCache) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._cache = cache

    @property
    def engine(self) -> Engine:
        return self._engine

    def get(self, grant_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            return self._public(_grant(conn, grant_id), conn)

    def update_policy(
        self,
        grant_id: str,
        raw: dict[str, Any],
        actor: Actor,
        *,
        expected: Collection[str] | None = None,
        keep: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Replace a grant's policy with ``raw``.

        ``expected``: the ``policy_etag`` tags the caller's edit may be based on; if the stored
        policy has changed since, nothing is written (``PreconditionFailed``), so a stale form
        or a read-modify-write client never overwrites a change it has not seen. ``keep``: policy
        fields the caller cannot see (the portal's form has no approval rule), carried over from
        the stored policy read under the same lock, never from an earlier read.
        """
        now = self._clock()
        with self._engine.begin() as conn:
            row = _grant(conn, grant_id, for_update=True)
            stored = row["policy"] or {}
            if expected is not None and (current := policy_etag(stored)) not in expected:
                raise PreconditionFailed(
                    f"grant {grant_id}'s policy has changed since it was read; read it again "
                    "and re-apply the change",
                    code="policy_changed",
                    headers={"ETag": current},
                )
            shown = {name: value for name, value in raw.items() if name not in keep}
            policy = parse_policy(shown | {name: stored[name] for name in keep if name in stored})
            if row["parent_id"] is not None:
                check_narrower(policy, parse_policy(_grant(conn, row["parent_id"])["policy"]))
            conn.execute(
                t.grants.update().where(t.grants.c.id == grant_id).values(policy=policy.to_doc())
            )
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="grant:update",
                    outcome="ok",
                    now=now,
                    app_id=row["app_id"],
                    grant_id=grant_id,
                    secret_id=row["secret_id"],
                    details={"policy": policy.to_doc()},
                    **actor_fields(actor),
                ),
            )
            result = self._public({**row, "policy": policy.to_doc()}, conn)
        self._cache.invalidate_grants()
        return result

    def clone(
        self,
        grant_id: str,
        body: GrantClone,
        actor: Actor,
        *,
        check: Callable[[Connection, dict[str, Any]], None] | None = None,
        event: str = "grant:clone",
    ) -> dict[str, Any]:
        """A clone of ``grant_id``; ``check`` vets the locked parent row in the same transaction
        (the SDK's mint uses it for ownership and label uniqueness)."""
        now = self._clock()
        with self._engine.begin() as conn:
            parent = _grant(conn, grant_id, for_update=True)
            if check is not None:
                check(conn, parent)
            status = self._status(parent, conn)
            if status != "active":
                raise Conflict(
                    f"grant {grant_id} is {status} and cannot be cloned", code=f"grant_{status}"
                )
            if parent["depth"] + 1 > MAX_DEPTH:
                raise Unprocessable(f"clones may nest at most {MAX_DEPTH} deep", field="grant_id")
            parent_policy = parse_policy(parent["policy"])
            child = merge_for_clone(parent_policy, parse_policy(body.policy or {}))
            check_narrower(child, parent_policy)
            expires_at = self._clone_expiry(body.ttl_seconds, self._chain_expiry(parent, conn), now)
            row = {
                "id": str(uuid.uuid4()),
                "secret_id": parent["secret_id"],
                "app_id": parent["app_id"],
                "parent_id": grant_id,
                "name": body.name,
                "policy": child.to_doc(),
                "status": "active",
                "depth": parent["depth"] + 1,
                "expires_at": expires_at,
                "created_at": now,
                "revoked_at": None,
                "last_used_at": None,
            }
            conn.execute(t.grants.insert().values(row))
            self._audit.append(
                conn,
                AuditEvent.new(
                    event=event,
                    outcome="ok",
                    now=now,
                    app_id=row["app_id"],
                    grant_id=row["id"],
                    secret_id=row["secret_id"],
                    details={"parent": grant_id, "ttl_seconds": body.ttl_seconds},
                    **actor_fields(actor),
                ),
            )
            return self._public(row, conn)

    @staticmethod
    def _clone_expiry(
        ttl: int | None, parent_expiry: datetime | None, now: datetime
    ) -> datetime | None:
        if ttl is None:
            return parent_expiry
        expires_at = now + timedelta(seconds=ttl)
        if parent_expiry is not None and expires_at > parent_expiry:
            raise Unprocessable(
                "ttl_seconds: the clone would outlive its parent "
                f"(the parent expires at {parent_expiry.isoformat()})",
                field="ttl_seconds",
            )
        return expires_at

    def revoke(self, grant_id: str, actor: Actor, *, reason: str | None = None) -> None:
        now = self._clock()
        with self._engine.begin() as conn:
            row = _grant(conn, grant_id, for_update=True)
            ids = _descendants(conn, grant_id)
            conn.execute(
                t.grants.update()
                .where(t.grants.c.id.in_(ids), t.grants.c.status == "active")
                .values(status="revoked", revoked_at=now)
            )
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="grant:revoke",
                    outcome="ok",
                    now=now,
                    reason=reason,
                    app_id=row["app_id"],
                    grant_id=grant_id,
                    secret_id=row["secret_id"],
                    details={"revoked": sorted(ids)},
                    **actor_fields(actor),
                ),
            )
        self._cache.invalidate_grants()

    def cached(self, grant_id: str) -> GrantContext | None:
        """The cached view of a grant, or None when it is not cached (or is missing)."""
        return cast(GrantContext | None, self._cache.grants.peek(grant_id))

    def resolve(self, grant_id: str) -> GrantContext | None:
        """The request path's view of a grant, or None when there is no such grant."""
        with store_reads():
            found = self._cache.grants.get(grant_id, lambda: self._load(grant_id))
        return cast(GrantContext | None, found)

    def refresh(self, grant_id: str) -> GrantContext | None:
        """``resolve`` past the cache: for when the cached view proved stale."""
        self._cache.grants.drop(lambda key, _: key == grant_id)
        return self.resolve(grant_id)

    def _load(self, grant_id: str) -> GrantContext | None:
        try:
            uuid.UUID(grant_id)
        except ValueError:
            return None
        generation = self._cache.changes.current  # before the read: the rows are at least this new
        with reading(self._engine) as conn:
            chain = _chain(conn, grant_id)
            if not chain:
                return None
            secret = (
                conn.execute(sa.select(t.secrets).where(t.secrets.c.id == chain[0]["secret_id"]))
                .mappings()
                .one()
            )
        expiries = [g["expires_at"] for g in chain if g["expires_at"] is not None]
        return GrantContext(
            grant_id=grant_id,
            app_id=chain[0]["app_id"],
            secret_id=secret["id"],
            secret_version=secret["version"],
            credential_type=secret["credential_type"],
            provider=secret["provider"],
            rules=rules_from_doc(secret["injection"]),
            hosts=tuple(parse_allowed_host(h) for h in secret["allowed_hosts"]),
            aws=secret["aws"],
            policies=tuple(parse_policy(g["policy"]) for g in chain),
            lineage=tuple(g["id"] for g in chain),
            revoked=any(g["status"] != "active" for g in chain) or secret["deleted_at"] is not None,
            expires_at=min(expiries) if expiries else None,
            generation=generation,
        )

    def _chain_expiry(self, row: dict[str, Any], conn: Connection) -> datetime | None:
        """When the grant stops working: the earliest TTL or policy ``expires_at`` up the chain.

        Both count, so a clone can neither be given a TTL past a policy's end nor be shown as
        active once a request would get ``grant_expired``.
        """
        expiries: list[datetime] = []
        for g in _chain(conn, row["id"]):
            ends = (g["expires_at"], parse_policy(g["policy"]).expires_at)
            expiries.extend(end for end in ends if end is not None)
        return min(expiries) if expiries else None

    def _status(self, row: dict[str, Any], conn: Connection) -> str:
        chain = _chain(conn, row["id"])
        if any(g["status"] != "active" for g in chain):
            return "revoked"
        expiry = self._chain_expiry(row, conn)
        return "expired" if expiry is not None and expiry <= self._clock() else "active"

    def _public(self, row: dict[str, Any], conn: Connection) -> dict[str, Any]:
        return {
            "grant_id": row["id"],
            "secret_id": row["secret_id"],
            "app_id": row["app_id"],
            "parent_grant_id": row["parent_id"],
            "name": row["name"],
            "policy": row["policy"],
            "status": self._status(row, conn),
            "expires_at": row["expires_at"],
            "created_at": row["created_at"],
            "revoked_at": row["revoked_at"],
            "last_used_at": row["last_used_at"],
        }


def policy_etag(doc: dict[str, Any] | None) -> str:
    """The entity tag of a grant's stored policy (``GET``/``PATCH /v1/grants/{id}``, the portal's
    edit form): what ``update_policy``'s ``expected`` is compared with."""
    return entity_tag(doc or {})


def _grant(conn: Connection, grant_id: str, *, for_update: bool = False) -> dict[str, Any]:
    query = sa.select(t.grants).where(t.grants.c.id == grant_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"grant {grant_id!r} not found", code="grant_not_found")
    return dict(row)


def _chain(conn: Connection, grant_id: str) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    current: str | None = grant_id
    while current is not None and len(chain) <= MAX_DEPTH:
        row = conn.execute(sa.select(t.grants).where(t.grants.c.id == current)).mappings().first()
        if row is None:
            break
        chain.append(dict(row))
        current = row["parent_id"]
    return chain


def _descendants(conn: Connection, grant_id: str) -> set[str]:
    found, frontier = {grant_id}, [grant_id]
    while frontier:
        children = (
            conn.execute(sa.select(t.grants.c.id).where(t.grants.c.parent_id.in_(frontier)))
            .scalars()
            .all()
        )
        frontier = [c for c in children if c not in found]
        found.update(frontier)
    return found
