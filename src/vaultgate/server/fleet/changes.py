"""The change counter: how every worker and node learns that its caches may be stale.

Each revocation, rotation, deletion or policy edit bumps ``meta.changes`` in the transaction that
makes the change (``AuditSink`` does it, holding the audit head lock). A process keeps the newest
value it has seen in ``Changes.current``; a cache entry is trusted only while the value it was
loaded under is still current. The value is learnt three ways:

- in every audit batch, which reads the counter under the head lock anyway (``admission``), so a
  use is never recorded on a view older than a change that committed before it;
- by a poller thread every ``POLL_SECONDS``, for the paths that record nothing (management API).

The process that made a change also drops its own entries at once (the services do).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.storage.driver import SQL
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import meta

log = logging.getLogger(__name__)

KEY: Final = "changes"
POLL_SECONDS: Final = 0.1

# The administrative events after which a cached key, grant or secret view may be wrong.
# Creations are absent on purpose: nothing cached describes what did not exist yet, and a flood of
# them (or of portal sign-ins) must not make every node drop its caches.
INVALIDATING: Final = frozenset(
    {
        "grant:update",
        "grant:revoke",
        "key:revoke",
        "secret:rotate",
        "secret:delete",
        "secret:update",
        "app:delete",
        # A managed agent's standing rides on its keys' cached principals.
        "agent:suspend",
        "agent:resume",
        "agent:revoke",
        "key:deprecate",
        "key:undeprecate",
    }
)

_SELECT: Final = {
    "sqlite": "SELECT value FROM meta WHERE key = ?",
    "postgresql": "SELECT value FROM meta WHERE key = %s",
}


def read(conn: SQL) -> int:
    value = conn.exec_driver_sql(_SELECT[conn.dialect.name], (KEY,)).scalar_one_or_none()
    return int(value) if value is not None else 0


def bump(conn: Connection) -> None:
    """Count one change, in ``conn``'s transaction (which must hold the audit head lock)."""
    current = read(conn)
    updated = conn.execute(
        meta.update().where(meta.c.key == KEY).values(value=str(current + 1))
    ).rowcount
    if updated == 0:  # a database created before the counter existed
        conn.execute(meta.insert().values(key=KEY, value=str(current + 1)))


class Changes:
    """The newest change count this process has seen, and the poller that keeps it fresh."""

    def __init__(self) -> None:
        self._current = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> int:
        return self._current

    def observe(self, value: int) -> None:
        if value > self._current:
            with self._lock:
                self._current = max(self._current, value)

    def start(self, engine: Engine, interval: float = POLL_SECONDS) -> None:
        self._poll(engine)
        self._thread = threading.Thread(
            target=self._run, args=(engine, interval), name="vaultgate-changes", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, engine: Engine, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._poll(engine)
            except sa.exc.SQLAlchemyError as exc:
                # The database is away: uses fail closed in the audit writer meanwhile, and the
                # batch that first succeeds again reads the counter itself.
                log.debug("change counter unreadable: %s", type(exc).__name__)

    def _poll(self, engine: Engine) -> None:
        # A read: on SQLite a plain connection would BEGIN IMMEDIATE and take the write lock
        # ten times a second per process, queueing the audit writer's commits behind it.
        with reading(engine) as conn:
            self.observe(read(conn))
