"""Opening an existing vault's database from a local command, or saying clearly where to look.

Every command that works on the data directory directly (``users``, ``master-key``,
``admin-keys --local``) checks first that a vault is there: run in the wrong directory it would
otherwise trace back from deep inside SQLite, after creating an empty ``.vaultgate`` beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from vaultgate.server.settings import Settings, safe_url

if TYPE_CHECKING:  # the database layer loads when a command opens a vault, not with the CLI
    from sqlalchemy.engine import Engine

    from vaultgate.server.auth.services import KeyService

WHERE = "pass --data-dir DIR or set VAULTGATE_DATA_DIR (or VAULTGATE_DATABASE_URL)"


def require_vault(settings: Settings) -> Engine:
    """The engine of an initialised vault; a one-line ClickException, creating nothing, if not."""
    from vaultgate.server.storage.engine import create_engine, has_schema, normalize_url

    url = normalize_url(settings.db_url)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise click.ClickException(_missing(settings, f"no database at {sqlite_file}"))
    engine = create_engine(url)
    try:
        found = has_schema(engine)
    except Exception as exc:  # any driver's connection error: reported, never a traceback
        engine.dispose()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(
            f"cannot open the database {safe_url(settings.db_url)}: {first}; {WHERE}"
        ) from None
    if not found:
        engine.dispose()
        raise click.ClickException(
            _missing(settings, f"the database {safe_url(settings.db_url)} holds no vault")
        )
    return engine


def local_key_service(settings: Settings) -> KeyService:
    """A KeyService on the vault's own database and master key, as a node would build it.

    Keys are hashed and audit events chained with keys derived from the master key, so a local
    command needs the master key too: the data directory's key file or VAULTGATE_MASTER_KEY.
    """
    from vaultgate.server.audit.sink import AuditSink
    from vaultgate.server.auth.services import KeyService
    from vaultgate.server.clock import utcnow
    from vaultgate.server.crypto import API_KEY_HASH, AUDIT_CHAIN, Barrier, MasterKeyError
    from vaultgate.server.keys_at_rest import check_against_database, load_keyring

    engine = require_vault(settings)
    try:
        keyring = load_keyring(settings)
        check_against_database(engine, keyring)
    except MasterKeyError as exc:
        engine.dispose()
        raise click.ClickException(f"{exc}; {WHERE}") from None
    barrier = Barrier(keyring)
    sink = AuditSink(barrier.derive_key(AUDIT_CHAIN))
    return KeyService(engine, barrier.derive_key(API_KEY_HASH), sink, utcnow, cache_ttl=0.0)


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return None if not path or path == ":memory:" else Path(path)


def _missing(settings: Settings, what: str) -> str:
    where = settings.data_dir.resolve()
    return f"no vault here ({what}; data directory {where}): {WHERE}, or run `vaultgate init`"
