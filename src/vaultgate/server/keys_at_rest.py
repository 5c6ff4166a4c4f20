"""Loading the master key set and checking it against what the database recorded.

A missing or wrong master key stops the server before it touches anything: it never makes a new
key over existing data.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.clock import utcnow
from vaultgate.server.crypto import (
    Barrier,
    EnvKeyProvider,
    FileKeyProvider,
    Keyring,
    MasterKeyError,
    aad_for,
    check_keyring,
)
from vaultgate.server.settings import Settings
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

ROOT_KEY = "root_master_key_id"


def load_keyring(settings: Settings) -> Keyring:
    if settings.master_key:
        return EnvKeyProvider(settings.master_key).load()
    if settings.key_file.exists():
        return FileKeyProvider(settings.key_file).load()
    raise MasterKeyError(
        f"no master key: set VAULTGATE_MASTER_KEY or create {settings.key_file} with "
        "'vaultgate init'"
    )


def check_against_database(engine: Engine, keyring: Keyring) -> None:
    """Refuse a key set that cannot open this database; record keys seen for the first time."""
    with engine.begin() as conn:
        stored = dict(conn.execute(sa.select(t.master_keys.c.key_id, t.master_keys.c.kcv)).all())
        root = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == ROOT_KEY)).scalar()
        if not stored and _has_sealed_data(conn):
            raise MasterKeyError("this database holds sealed secrets but records no master key")
        check_keyring(keyring, stored, root_id=root)
        record_keys(conn, keyring, stored)
        if root is None:
            conn.execute(t.meta.insert().values(key=ROOT_KEY, value=keyring.root.key_id))


def record_keys(conn: Connection, keyring: Keyring, stored: dict[str, str]) -> None:
    for key_id, kcv in keyring.kcvs().items():
        if key_id not in stored:
            conn.execute(t.master_keys.insert().values(key_id=key_id, kcv=kcv, created_at=utcnow()))


def _has_sealed_data(conn: Connection) -> bool:
    return conn.execute(sa.select(sa.func.count()).select_from(t.secret_versions)).scalar() != 0


def rewrap_all(engine: Engine, barrier: Barrier) -> tuple[int, int]:
    """Re-wrap every data key under the active master key, one row per transaction.

    Safe to kill and run again: each row is either under its old key or the new one, and both
    open. Returns (rewrapped, total live versions).
    """
    active = barrier.active_key_id
    done = 0
    with reading(engine) as conn:
        todo = conn.execute(
            sa.select(
                t.secret_versions.c.secret_id, t.secret_versions.c.version, t.secrets.c.app_id
            )
            .join(t.secrets, t.secrets.c.id == t.secret_versions.c.secret_id)
            .where(
                t.secret_versions.c.wrapped_key.isnot(None),
                t.secret_versions.c.master_key_id != active,
            )
        ).all()
        total = (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.secret_versions)
                .where(t.secret_versions.c.wrapped_key.isnot(None))
            ).scalar()
            or 0
        )
    for secret_id, version, app_id in todo:
        where = (t.secret_versions.c.secret_id == secret_id, t.secret_versions.c.version == version)
        with engine.begin() as conn:
            wrapped = conn.execute(
                sa.select(t.secret_versions.c.wrapped_key).where(*where).with_for_update()
            ).scalar()
            if wrapped is None:
                continue  # destroyed meanwhile (rotation or deletion of the secret)
            new, key_id = barrier.rewrap(wrapped, aad=aad_for(app_id, secret_id, version))
            conn.execute(
                t.secret_versions.update()
                .where(*where)
                .values(wrapped_key=new, master_key_id=key_id)
            )
        done += 1
    # Audit sinks' webhook secrets are sealed the same way (imported here: sinks/ needs runtime
    # parts that import this module).
    from vaultgate.server.sinks.store import rewrap_secrets

    sinks_done, sinks_total = rewrap_secrets(engine, barrier)
    return done + sinks_done, int(total) + sinks_total
