"""Loading the master key set and checking it against what the database recorded.

A missing or wrong master key stops the server before it touches anything: it never makes a new
key over existing data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.clock import utcnow
from vaultgate.server.crypto import (
    Barrier,
    EnvKeyProvider,
    FileKeyProvider,
    Keyring,
    MasterKeyError,
    check_keyring,
)
from vaultgate.server.fleet.heartbeat import (
    HEARTBEAT_SECONDS,
    LIVE_SECONDS,
    fleet_active,
    lacking,
    set_fleet_active,
)
from vaultgate.server.settings import Settings
from vaultgate.server.storage import tables as t

log = logging.getLogger(__name__)
Clock = Callable[[], float]

ROOT_KEY = "root_master_key_id"
# A request meeting a master key this node lacks re-reads the key set at most this often.
RELOAD_EVERY: Final = 1.0


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
        if fleet_active(conn) is None:
            set_fleet_active(conn, keyring.active.key_id)


def record_keys(conn: Connection, keyring: Keyring, stored: dict[str, str]) -> None:
    for key_id, kcv in keyring.kcvs().items():
        if key_id not in stored:
            conn.execute(t.master_keys.insert().values(key_id=key_id, kcv=kcv, created_at=utcnow()))


def _has_sealed_data(conn: Connection) -> bool:
    """Whether any sealed value is stored (``sealed_values.COLUMNS``: secret versions, OAuth
    states and clients, approvals, sinks' secrets)."""
    from vaultgate.server.sealed_values import COLUMNS  # its modules import this one

    for column in COLUMNS:
        stored = column.table.c[column.column]
        if conn.execute(sa.select(stored).where(stored.isnot(None)).limit(1)).first():
            return True
    return False


class RewrapRefused(Exception):
    """Re-wrapping would leave a live node unable to open the data keys it moves."""


def activate_for_rewrap(
    engine: Engine, keyring: Keyring, target: str, *, wait: float, clock: Clock = time.time
) -> Keyring:
    """Make ``target`` the fleet's active master key once every live node holds it.

    Waits up to ``wait`` seconds for nodes to report it (a node re-reads its key set every
    heartbeat), then refuses, naming each node still without it. Returns the keyring to re-wrap
    with (``target`` active).
    """
    if keyring.get(target) is None:
        raise RewrapRefused(f"this key set has no master key {target}")
    deadline = time.monotonic() + wait
    while missing := lacking(engine, target, clock()):
        if time.monotonic() >= deadline:
            raise RewrapRefused(
                f"re-wrap refused: live node(s) {', '.join(missing)} do not hold master key "
                f"{target}; give each of them the key (its key file or VAULTGATE_MASTER_KEY; a "
                f"running node re-reads its key file every {HEARTBEAT_SECONDS:g} s) and run this "
                f"again. A node that stopped leaves the live set after {LIVE_SECONDS:g} s."
            )
        time.sleep(0.2)
    with engine.begin() as conn:
        set_fleet_active(conn, target)
    return Keyring(keyring.keys, active_id=target)


class Rewrapped(NamedTuple):
    """What a re-wrap did: values moved, sealed values found, those still under another key at
    the end (sealed under an older key by a node while this ran, or unreadable), and which of
    them do not open at all (`sealed_values.describe`: their column and row, never a value)."""

    moved: int
    total: int
    left: int
    unreadable: tuple[str, ...] = ()


def rewrap_all(engine: Engine, barrier: Barrier, *, passes: int = 3) -> Rewrapped:
    """Re-wrap every sealed value's data key under the active master key, one row per transaction.

    Every kind counts: secret versions, OAuth token states, OAuth apps' client secrets, Connect
    sessions' verifiers, held approval requests and results, audit sinks' webhook secrets
    (``sealed_values.COLUMNS``). Safe to kill and run again: each value is under its old key or
    the new one, and both open. A value sealed under an older key while a pass ran (a node not yet
    sealing under the active key) is picked up by the next pass, up to ``passes``.
    """
    # Imported here: sinks/ and oauth/ need runtime parts that import this module.
    from vaultgate.server.sealed_values import Unreadable, describe, found, move

    active = barrier.active_key_id
    moved = 0
    # A value that does not open (a corrupt or truncated row) is reported and passed over:
    # one bad row must not leave every value after it under the old key.
    unreadable: dict[str, None] = {}
    for _ in range(passes):
        values = found(engine)
        todo = [v for v in values if v.key_id != active and describe(v) not in unreadable]
        if not todo:
            break
        for value in todo:
            try:
                moved += move(engine, barrier, value)
            except Unreadable:
                unreadable[describe(value)] = None
    values = found(engine)
    left = sum(value.key_id != active for value in values)
    return Rewrapped(moved, len(values), left, tuple(unreadable))


class NodeKeys:
    """This node's key set and sealing key, re-read while it runs (``fleet.heartbeat``).

    A key file that gains a key is picked up without a restart. A re-read that drops a key
    this node held, or changes one, or changes the root, is refused and logged: the node keeps
    what it has. New versions are sealed under the fleet's active key once this node holds it.
    """

    def __init__(self, settings: Settings | None, barrier: Barrier) -> None:
        self._settings = settings
        self.barrier = barrier
        self._active: str | None = None
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._last_error = ""

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self.barrier.keyring.key_ids

    def holds(self, key_id: str) -> bool:
        return self.barrier.keyring.get(key_id) is not None

    def refresh(self, active: str | None) -> tuple[str, ...]:
        """Re-read the key set, seal under ``active`` when held; the key ids now held."""
        with self._lock:
            self._active = active or self._active
            self._use(self._reread())
        return self.key_ids

    def reload_for(self, key_id: str) -> bool:
        """Re-read the key set now (at most once a ``RELOAD_EVERY``); True if it has ``key_id``."""
        with self._lock:
            if not self.holds(key_id) and time.monotonic() - self._read_at >= RELOAD_EVERY:
                self._use(self._reread())
        return self.holds(key_id)

    def _reread(self) -> Keyring:
        current = self.barrier.keyring
        if self._settings is None:
            return current
        self._read_at = time.monotonic()
        try:
            fresh = load_keyring(self._settings)
            check_keyring(fresh, current.kcvs(), root_id=current.root.key_id)
        except MasterKeyError as exc:
            if str(exc) != self._last_error:
                log.warning("master key set not reloaded, keeping the one loaded: %s", exc)
                self._last_error = str(exc)
            return current
        return fresh

    def _use(self, keyring: Keyring) -> None:
        active = self._active if self._active and keyring.get(self._active) else None
        active = active or self.barrier.keyring.active.key_id
        if keyring.get(active) is None:
            active = keyring.active.key_id
        current = self.barrier.keyring
        if keyring.key_ids == current.key_ids and active == current.active.key_id:
            return
        self.barrier = Barrier(Keyring(keyring.keys, active_id=active))
        log.info("master keys held: %s; sealing under %s", ", ".join(keyring.key_ids), active)
