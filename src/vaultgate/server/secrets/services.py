"""Secrets: store (sealed), list, show, rotate, delete; and open one for a request.

Every change and its audit record commit in one transaction, so neither exists without the other.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier, Sealed, aad_for, wrapping_key_id
from vaultgate.server.errors import Conflict, MasterKeyUnavailable, NotFound
from vaultgate.server.keys_at_rest import NodeKeys
from vaultgate.server.policy import parse_policy
from vaultgate.server.providers import Catalogue
from vaultgate.server.secrets.cache import GrantCache
from vaultgate.server.secrets.credentials import (
    from_plaintext,
    parse_credential,
    parse_provider_credential,
    to_plaintext,
)
from vaultgate.server.secrets.errors import store_reads
from vaultgate.server.secrets.models import SecretCreate
from vaultgate.server.secrets.specs import check_rules_fit, provider_of, resolve_spec, rules_to_doc
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

log = logging.getLogger(__name__)


class SecretService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        catalogue: Catalogue,
        audit: AuditSink,
        clock: Clock,
        cache: GrantCache,
        keys: NodeKeys | None = None,
    ) -> None:
        self._engine = engine
        # The key set may grow while the node runs (fleet.heartbeat); read it through here.
        self.keys = keys or NodeKeys(None, barrier)
        self._catalogue = catalogue
        self._audit = audit
        self._clock = clock
        self._cache = cache

    def create(self, body: SecretCreate, actor: Actor) -> dict[str, Any]:
        provider = provider_of(body, self._catalogue)
        params: dict[str, str] = {}
        if provider is not None:
            credential = parse_provider_credential(provider, body.credential)
            params = {**provider.derive_params(credential), **body.provider_params}
        spec = resolve_spec(body, provider, params)
        if provider is None:
            credential = parse_credential(spec.credential_type, body.credential)
        check_rules_fit(spec.rules, credential)
        policy = parse_policy(body.policy or {})
        now = self._clock()
        secret_id, grant_id = str(uuid.uuid4()), str(uuid.uuid4())
        secret = {
            "id": secret_id,
            "app_id": body.app_id,
            "name": body.name,
            "provider": spec.provider.slug if spec.provider else None,
            "credential_type": spec.credential_type,
            "injection": rules_to_doc(spec.rules),
            "allowed_hosts": list(spec.allowed_hosts),
            "aws": spec.aws,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "last_used_at": None,
            "deleted_at": None,
        }
        grant = {
            "id": grant_id,
            "secret_id": secret_id,
            "app_id": body.app_id,
            "parent_id": None,
            "name": body.name,
            "policy": policy.to_doc(),
            "status": "active",
            "depth": 0,
            "expires_at": None,
            "created_at": now,
            "revoked_at": None,
            "last_used_at": None,
        }
        with self._engine.begin() as conn:
            _require_app(conn, body.app_id)
            if _live_secret_named(conn, body.app_id, body.name):
                raise Conflict(
                    f"name: a secret named {body.name!r} exists in this app",
                    code="duplicate_name",
                    field="name",
                )
            conn.execute(t.secrets.insert().values(secret))
            self._insert_version(conn, secret_id, body.app_id, 1, credential)
            conn.execute(t.grants.insert().values(grant))
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="secret:create",
                    outcome="ok",
                    now=now,
                    app_id=body.app_id,
                    secret_id=secret_id,
                    grant_id=grant_id,
                    details={"name": body.name, "provider": secret["provider"]},
                    **actor_fields(actor),
                ),
            )
        return {**secret_public(secret), "grant_id": grant_id, "policy": grant["policy"]}

    def _insert_version(
        self, conn: Connection, secret_id: str, app_id: str, version: int, credential: Credential
    ) -> None:
        sealed = self.keys.barrier.seal_secret(
            to_plaintext(credential), aad=aad_for(app_id, secret_id, version)
        )
        conn.execute(
            t.secret_versions.insert().values(
                secret_id=secret_id,
                version=version,
                ciphertext=sealed.ciphertext,
                wrapped_key=sealed.wrapped_key,
                master_key_id=sealed.master_key_id,
                created_at=self._clock(),
                destroyed_at=None,
            )
        )

    def list(self, app_id: str | None) -> list[dict[str, Any]]:
        query = sa.select(t.secrets).where(t.secrets.c.deleted_at.is_(None))
        if app_id is not None:
            query = query.where(t.secrets.c.app_id == app_id)
        with reading(self._engine) as conn:
            if app_id is not None:
                _require_app(conn, app_id)
            rows = conn.execute(query.order_by(t.secrets.c.created_at)).mappings().all()
            counts: dict[str, int] = dict(
                conn.execute(
                    sa.select(t.grants.c.secret_id, sa.func.count()).group_by(t.grants.c.secret_id)
                ).all()
            )
        return [{**secret_public(dict(r)), "grants": counts.get(r["id"], 0)} for r in rows]

    def get(self, secret_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            row = _live_secret(conn, secret_id)
            grants = (
                conn.execute(
                    sa.select(t.grants.c.id, t.grants.c.parent_id, t.grants.c.status)
                    .where(t.grants.c.secret_id == secret_id)
                    .order_by(t.grants.c.created_at)
                )
                .mappings()
                .all()
            )
        root = next((g["id"] for g in grants if g["parent_id"] is None), None)
        return {
            **secret_public(row),
            "grant_id": root,
            "grants": [
                {"grant_id": g["id"], "parent_grant_id": g["parent_id"], "status": g["status"]}
                for g in grants
            ],
        }

    def rotate(self, secret_id: str, raw: dict[str, Any], actor: Actor) -> dict[str, Any]:
        now = self._clock()
        with self._engine.begin() as conn:
            row = _live_secret(conn, secret_id, for_update=True)
            if row["provider"]:
                credential = parse_provider_credential(self._catalogue.get(row["provider"]), raw)
            else:
                credential = parse_credential(cast(CredentialType, row["credential_type"]), raw)
            version = row["version"] + 1
            self._insert_version(conn, secret_id, row["app_id"], version, credential)
            conn.execute(
                t.secrets.update()
                .where(t.secrets.c.id == secret_id)
                .values(version=version, updated_at=now)
            )
            _destroy_versions(conn, secret_id, now, below=version)
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="secret:rotate",
                    outcome="ok",
                    now=now,
                    app_id=row["app_id"],
                    secret_id=secret_id,
                    details={"version": version},
                    **actor_fields(actor),
                ),
            )
        self._cache.invalidate_secret(secret_id)
        _scrub_wal(self._engine)
        return {"secret_id": secret_id, "version": version, "updated_at": now}

    def delete(self, secret_id: str, actor: Actor) -> None:
        now = self._clock()
        with self._engine.begin() as conn:
            row = _live_secret(conn, secret_id, for_update=True)
            conn.execute(
                t.secrets.update()
                .where(t.secrets.c.id == secret_id)
                .values(deleted_at=now, updated_at=now)
            )
            conn.execute(
                t.grants.update()
                .where(t.grants.c.secret_id == secret_id, t.grants.c.status == "active")
                .values(status="revoked", revoked_at=now)
            )
            _destroy_versions(conn, secret_id, now, below=None)
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="secret:delete",
                    outcome="ok",
                    now=now,
                    app_id=row["app_id"],
                    secret_id=secret_id,
                    **actor_fields(actor),
                ),
            )
        self._cache.invalidate_secret(secret_id)
        _scrub_wal(self._engine)

    def is_cached(self, secret_id: str, version: int) -> bool:
        return self._cache.sealed_cached(secret_id, version) is not None

    def open(self, app_id: str, secret_id: str, version: int, ctype: CredentialType) -> Credential:
        """The plaintext of one version, for the request about to use it."""
        sealed = self.require_master_key(secret_id, version)
        aad = aad_for(app_id, secret_id, version)
        return from_plaintext(ctype, self.keys.barrier.open_secret(sealed, aad=aad))

    def require_master_key(self, secret_id: str, version: int) -> Sealed:
        """The sealed version, once this node holds the master key wrapping it.

        A re-wrap may have moved the data key to a master key this node has not been given:
        that is this node's state, not the client's fault nor a bug, so it answers 503
        ``master_key_unavailable`` and leaves every cache as it is (other grants and secrets
        still open here). The key set is re-read first, in case the key just arrived.
        """
        sealed = self._sealed(secret_id, version)
        key_id = wrapping_key_id(sealed)
        if key_id is not None and not self.keys.holds(key_id) and not self.keys.reload_for(key_id):
            log.error(
                "master key %s is not held by this node; secret %s version %d is wrapped under "
                "it (give this node the key file with it)",
                key_id,
                secret_id,
                version,
            )
            raise MasterKeyUnavailable(key_id)
        return sealed

    def _sealed(self, secret_id: str, version: int) -> Sealed:
        with store_reads():
            return self._cache.sealed(
                secret_id, version, lambda: self._load_sealed(secret_id, version)
            )

    def _load_sealed(self, secret_id: str, version: int) -> Sealed:
        with reading(self._engine) as conn:
            row = (
                conn.execute(
                    sa.select(t.secret_versions).where(
                        t.secret_versions.c.secret_id == secret_id,
                        t.secret_versions.c.version == version,
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["ciphertext"] is None:
            raise NotFound("this secret version no longer exists", code="credential_revoked")
        return Sealed(row["ciphertext"], row["wrapped_key"], row["master_key_id"])


def _destroy_versions(conn: Connection, secret_id: str, now: Any, *, below: int | None) -> None:
    if conn.dialect.name == "sqlite":
        # Without it SQLite only unlinks the old cell: the ciphertext and wrapped key would stay
        # readable in the page's free space. (The WAL copy goes in ``_scrub_wal`` after commit.)
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    cond = [t.secret_versions.c.secret_id == secret_id, t.secret_versions.c.ciphertext.isnot(None)]
    if below is not None:
        cond.append(t.secret_versions.c.version < below)
    conn.execute(
        t.secret_versions.update()
        .where(*cond)
        .values(ciphertext=None, wrapped_key=None, destroyed_at=now)
    )


def _scrub_wal(engine: Engine) -> None:
    """Fold the WAL into the database and truncate it, so no old frame keeps destroyed versions.

    Best effort: a reader still holding an old snapshot keeps the WAL alive; its frames are then
    dropped at the next checkpoint SQLite runs on its own.
    """
    if engine.dialect.name != "sqlite":
        return
    # On the DBAPI connection (autocommit): a checkpoint cannot run inside the transaction that
    # SQLAlchemy's connect() would begin.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = cursor.fetchone()
        cursor.close()
    finally:
        raw.close()
    if busy is not None and busy[0]:
        log.warning("the WAL could not be truncated after destroying a secret version")


def _require_app(conn: Connection, app_id: str) -> None:
    if conn.execute(sa.select(t.apps.c.id).where(t.apps.c.id == app_id)).first() is None:
        raise NotFound(f"app_id: app {app_id!r} not found", code="app_not_found", field="app_id")


def _live_secret_named(conn: Connection, app_id: str, name: str) -> bool:
    query = sa.select(t.secrets.c.id).where(
        t.secrets.c.app_id == app_id, t.secrets.c.name == name, t.secrets.c.deleted_at.is_(None)
    )
    return conn.execute(query).first() is not None


def _live_secret(conn: Connection, secret_id: str, *, for_update: bool = False) -> dict[str, Any]:
    query = sa.select(t.secrets).where(
        t.secrets.c.id == secret_id, t.secrets.c.deleted_at.is_(None)
    )
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"secret {secret_id!r} not found", code="secret_not_found")
    return dict(row)


def secret_public(row: dict[str, Any]) -> dict[str, Any]:
    """Metadata only: there is no field here that could hold the credential."""
    return {
        "secret_id": row["id"],
        "app_id": row["app_id"],
        "name": row["name"],
        "provider": row["provider"],
        "credential_type": row["credential_type"],
        "injection": row["injection"],
        "allowed_hosts": row["allowed_hosts"],
        "aws": row["aws"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_used_at": row["last_used_at"],
    }
