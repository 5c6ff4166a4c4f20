"""Grants administered from the official client: list, mint a sibling, create, revoke.

Every grant made here is a clone (``GrantService.clone``): a mint is a clone of its source grant,
a managed-secret grant a clone of the secret's root grant. So the policy an administrator set on
a grant binds every grant an app key makes from it; ``check_narrower`` refuses a wider one.
Everything is scoped to the calling key's app: another app's grant or secret answers exactly like
one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import Conflict, NotFound, Unprocessable
from vaultgate.server.policy import parse_policy
from vaultgate.server.secrets.grants import GrantService
from vaultgate.server.secrets.models import GrantClone
from vaultgate.server.secrets.sdk_policy import as_grant_policy_error, parse_grant_policy
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

MAX_LIMIT = 1000  # the client's own bound for list_grants(limit=...)
MAX_LABEL = 200


@dataclass(frozen=True, slots=True)
class GrantQuery:
    limit: int = 100
    offset: int = 0
    provider_id: str | None = None  # a secret's name (its slug) or its catalogue provider
    status: str | None = None
    account: str | None = None
    label: str | None = None


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _not_found(what: str = "grant", code: str = "grant_not_found") -> NotFound:
    return NotFound(f"{what} not found", code=code)


class SdkGrants:
    def __init__(self, grants: GrantService) -> None:
        self._grants = grants
        self._engine = grants.engine

    # --- list ---------------------------------------------------------------------------------
    def list(self, app_id: str, query: GrantQuery, now: datetime) -> dict[str, Any]:
        with reading(self._engine) as conn:
            rows = [dict(r) for r in conn.execute(app_grants(app_id)).mappings()]
        by_id = {r["id"]: r for r in rows}
        states = {r["id"]: grant_state(r, by_id, now) for r in rows}
        chosen = [r for r in rows if _matches(r, states[r["id"]][0], query)]
        page = chosen[query.offset : query.offset + query.limit]
        return {
            "grants": [_item(r, states[r["id"]]) for r in page],
            "total": len(chosen),
            "limit": query.limit,
            "offset": query.offset,
            "has_more": query.offset + len(page) < len(chosen),
        }

    # --- mint ---------------------------------------------------------------------------------
    def mint(
        self, app_id: str, source_id: str, label: str, raw_policy: object, actor: Actor
    ) -> dict[str, Any]:
        wanted = parse_grant_policy(raw_policy, default_ttl=False)
        secret: dict[str, Any] = {}

        def vet(conn: Connection, parent: dict[str, Any]) -> None:
            if parent["app_id"] != app_id:
                raise _not_found()
            secret.update(_lock_secret(conn, parent["secret_id"]))
            _refuse_taken_label(conn, parent["secret_id"], label)

        body = GrantClone(name=label, ttl_seconds=wanted.ttl_seconds, policy=wanted.policy)
        row = self._clone(source_id, body, actor, vet, "grant:mint")
        return {
            "grant_id": row["grant_id"],
            "provider_id": secret["name"],
            "scopes": [],
            "status": row["status"],
            "expires_at": iso(row["expires_at"]),
            "created_at": iso(row["created_at"]),
            "last_used_at": None,
            "principal_type": "system",
            "label": label,
            "credential_id": secret["id"],
            "grant_policy": row["policy"],
        }

    # --- create on a managed secret -----------------------------------------------------------
    def create(
        self,
        app_id: str,
        secret_id: str,
        principal: object,
        raw_policy: object,
        credential_id: object,
        actor: Actor,
    ) -> dict[str, Any]:
        label = _system_label(principal)
        wanted = parse_grant_policy(raw_policy, default_ttl=True)
        if credential_id is not None and credential_id != secret_id:
            # A vaultgate secret is one credential: its own id is the only one it holds.
            raise _not_found("credential", "credential_not_found")
        root = self._root_grant(app_id, secret_id)

        def vet(conn: Connection, parent: dict[str, Any]) -> None:
            _lock_secret(conn, secret_id)
            if label is not None:
                _refuse_taken_label(conn, secret_id, label)

        body = GrantClone(name=label, ttl_seconds=wanted.ttl_seconds, policy=wanted.policy)
        row = self._clone(root, body, actor, vet, "grant:create")
        return {
            "grant_id": row["grant_id"],
            "principal_type": "system",
            "label": label,
            "created_at": iso(row["created_at"]),
            "credential_id": secret_id,
        }

    # --- revoke -------------------------------------------------------------------------------
    def revoke(
        self, app_id: str, grant_id: str, reason: str | None, actor: Actor, now: datetime
    ) -> dict[str, Any]:
        try:
            grant = self._grants.get(grant_id)
        except NotFound:
            raise _not_found() from None
        if grant["app_id"] != app_id:
            raise _not_found()
        if grant["status"] == "revoked":
            raise NotFound("grant not found (it is already revoked)", code="grant_not_found")
        self._grants.revoke(grant_id, actor, reason=reason)
        return {
            "success": True,
            "message": "grant revoked, with every grant made from it",
            "grant_id": grant_id,
            "revoked_at": iso(now),
        }

    # --- shared -------------------------------------------------------------------------------
    def _clone(
        self, source_id: str, body: GrantClone, actor: Actor, vet: Any, event: str
    ) -> dict[str, Any]:
        try:
            with as_grant_policy_error():
                return self._grants.clone(source_id, body, actor, check=vet, event=event)
        except Conflict as exc:
            if exc.code not in ("grant_revoked", "grant_expired"):
                raise
            raise NotFound(
                f"grant not found (it is {exc.code.removeprefix('grant_')})",
                code="grant_not_found",
            ) from None
        except NotFound as exc:
            if exc.code == "grant_not_found":
                raise _not_found() from None  # never echo the id the caller guessed
            raise

    def _root_grant(self, app_id: str, secret_id: str) -> str:
        query = (
            sa.select(t.grants.c.id)
            .join(t.secrets, t.secrets.c.id == t.grants.c.secret_id)
            .where(
                t.secrets.c.id == secret_id,
                t.secrets.c.app_id == app_id,
                t.secrets.c.deleted_at.is_(None),
                t.grants.c.parent_id.is_(None),
                t.grants.c.status == "active",
            )
            .order_by(t.grants.c.created_at)
            .limit(1)
        )
        with reading(self._engine) as conn:
            found = conn.execute(query).scalar()
        if found is None:
            raise _not_found("managed secret", "managed_secret_not_found")
        return str(found)


def _system_label(principal: object) -> str | None:
    if not isinstance(principal, dict):
        raise Unprocessable("principal: must be an object with a type", field="principal")
    kind = principal.get("type")
    if kind != "system":
        # vaultgate has no end users, IdP groups or managed agents to bind a grant to; an app's
        # grants are the app's own (the client's SystemPrincipal).
        shown = kind if kind in ("user", "group", "agent") else "unknown"
        raise Unprocessable(
            f"principal.type: {shown} principals are not supported; use SystemPrincipal",
            code="principal_not_supported",
            field="principal.type",
        )
    label = principal.get("label")
    if label is not None and (not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL):
        raise Unprocessable(
            f"principal.label: must be 1 to {MAX_LABEL} characters", field="principal.label"
        )
    return label


def _lock_secret(conn: Connection, secret_id: str) -> dict[str, Any]:
    # Locks the secret row so two mints of one label cannot both pass the check (PostgreSQL;
    # SQLite writers are serialised by BEGIN IMMEDIATE).
    query = sa.select(t.secrets.c.id, t.secrets.c.name).where(t.secrets.c.id == secret_id)
    return dict(conn.execute(query.with_for_update()).mappings().one())


def _refuse_taken_label(conn: Connection, secret_id: str, label: str) -> None:
    taken = conn.execute(
        sa.select(t.grants.c.id).where(
            t.grants.c.secret_id == secret_id,
            t.grants.c.name == label,
            t.grants.c.status == "active",
        )
    ).first()
    if taken is not None:
        raise Conflict(
            f"label: an active grant on this secret is already labelled {label!r}",
            code="sibling_label_conflict",
            field="label",
            extra={"label": label},
        )


def app_grants(app_id: str) -> sa.Select[Any]:
    """An app's grants with their secret's name and provider, oldest first."""
    return (
        sa.select(
            t.grants,
            t.secrets.c.name.label("secret_name"),
            t.secrets.c.provider.label("secret_provider"),
            t.secrets.c.deleted_at.label("secret_deleted_at"),
        )
        .join(t.secrets, t.secrets.c.id == t.grants.c.secret_id)
        .where(t.grants.c.app_id == app_id)
        .order_by(t.grants.c.created_at, t.grants.c.id)
    )


def grant_state(
    row: dict[str, Any], by_id: dict[str, dict[str, Any]], now: datetime
) -> tuple[str, Any]:
    """(status, effective expiry) of a grant: what a request through it would meet."""
    revoked = row["secret_deleted_at"] is not None
    ends: list[datetime] = []
    current: dict[str, Any] | None = row
    while current is not None:
        revoked = revoked or current["status"] != "active"
        for end in (current["expires_at"], parse_policy(current["policy"]).expires_at):
            if end is not None:
                ends.append(end)
        current = by_id.get(current["parent_id"]) if current["parent_id"] else None
    expiry = min(ends) if ends else None
    if revoked:
        return "revoked", expiry
    return ("expired" if expiry is not None and expiry <= now else "active"), expiry


def _item(row: dict[str, Any], state: tuple[str, Any]) -> dict[str, Any]:
    status, expiry = state
    return {
        "grant_kind": "managed_secret",
        "grant_id": row["id"],
        "managed_secret_id": row["secret_id"],
        "managed_secret_slug": row["secret_name"],
        "managed_secret_name": row["secret_name"],
        "agent_id": None,
        "label": row["name"],
        "status": status,
        "account_identifier": None,
        "grant_policy": row["policy"],
        "expires_at": iso(row["expires_at"]),
        "grant_expires_at": iso(expiry),
        "created_at": iso(row["created_at"]),
        "last_used_at": iso(row["last_used_at"]),
        "principal_type": "system",
        "access_via": "ownership",
        "delegated_at": None,
        "parent_grant_id": row["parent_id"],
        "depth": row["depth"],
        "delegable": False,
        "scope_constraint": None,
        "credential_id": row["secret_id"],
        "credential_kind": "developer",
        "credential_label": row["secret_name"],
    }


def _matches(row: dict[str, Any], status: str, query: GrantQuery) -> bool:
    wanted = query.provider_id
    if wanted is not None and wanted not in (row["secret_name"], row["secret_provider"]):
        return False
    if query.status is not None and status != query.status:
        return False
    # vaultgate grants carry no account: a filter on one matches none of them.
    if query.account is not None:
        return False
    return query.label is None or row["name"] == query.label
