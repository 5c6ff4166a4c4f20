"""First start: the key file, the schema, the first admin key and portal user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vaultgate.server.auth.services import Actor
from vaultgate.server.auth.users import create_user, generate_password
from vaultgate.server.crypto import FileKeyProvider
from vaultgate.server.keys_at_rest import check_against_database, load_keyring
from vaultgate.server.settings import Settings, safe_url
from vaultgate.server.storage.engine import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    SQLITE_SUFFIXES,
    create_engine,
    has_schema,
    migrate,
)

FIRST_USER = "admin@vaultgate.local"


@dataclass(frozen=True)
class InitResult:
    admin_key: str
    portal_user: str
    portal_password: str
    data_dir: str


class AlreadyInitialised(Exception):
    pass


def initialise(settings: Settings) -> InitResult:
    """Create everything a new vault needs; refuses (and changes nothing) when any of it exists."""
    engine = create_engine(settings.db_url)
    try:
        if has_schema(engine):
            raise AlreadyInitialised(
                f"the database {safe_url(settings.db_url)} is already initialised"
            )
        if not settings.master_key and settings.key_file.exists():
            raise AlreadyInitialised(f"a master key file exists at {settings.key_file}")
        if settings.master_key:
            load_keyring(settings)  # fail early on a malformed key, before creating anything
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            FileKeyProvider.create(settings.key_file)
    finally:
        engine.dispose()
    # Imported here: `serve --workers` imports this module in a supervisor that builds no
    # runtime (`prepare_storage`), and the runtime's imports are most of a worker's memory.
    from vaultgate.server.runtime import Runtime

    rt = Runtime.build(settings)
    try:
        actor = Actor(portal_user="vaultgate init")
        admin_key, _ = rt.keys.create_key("admin", "initial admin key", actor)
        password = generate_password()
        create_user(rt.engine, FIRST_USER, password, rt.clock())
    finally:
        rt.engine.dispose()
    protect_data_dir(settings)
    return InitResult(admin_key, FIRST_USER, password, str(settings.data_dir))


def is_initialised(settings: Settings) -> bool:
    engine = create_engine(settings.db_url)
    try:
        return has_schema(engine)
    finally:
        engine.dispose()


def protect_data_dir(settings: Settings) -> None:
    """The data directory 0700 and its database files 0600 (``init`` and ``serve``).

    They hold the admin's password hash, the sealed secrets and the whole audit trail; a vault
    made before this check had 0644 files in a 0755 directory, readable by any local user. The
    key file is not narrowed here: it is written 0600, and one found readable by others is
    refused at start (its key may have been read), not quietly fixed.
    """
    if settings.data_dir.is_dir():
        settings.data_dir.chmod(PRIVATE_DIR)
    if not settings.db_url.startswith("sqlite"):
        return
    database = Path(settings.db_url.split("///", 1)[-1])
    for suffix in SQLITE_SUFFIXES:
        path = database.with_name(database.name + suffix)
        if path.is_file():
            path.chmod(PRIVATE_FILE)


def prepare_storage(settings: Settings) -> None:
    """What serving needs of the database and key set, done once before any worker starts.

    Migrates the schema and checks the key set against it (MasterKeyError when it does not fit),
    then lets go: a supervisor serves no request, so it opens nothing else and builds no app.
    """
    keyring = load_keyring(settings)
    engine = create_engine(settings.db_url, durability=settings.durability)
    try:
        migrate(engine)
        check_against_database(engine, keyring)
    finally:
        engine.dispose()
