"""``last_used_at`` on grants, secrets and API keys, kept current off the request path.

A use only marks its grant, secret and key as touched; at most once per ``interval`` per grant,
and the writes happen later in one batch on a worker thread. The column is for people (which key
is stale, which secret is unused), so minute precision and losing a batch to a database outage
are acceptable; slowing a request down or failing one for it is not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.storage import tables as t

log = logging.getLogger(__name__)

MAX_TRACKED = 100_000


class UsageRecorder:
    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, float] = {}  # grant id -> when it was last queued
        self._pending: dict[str, tuple[str, str | None, datetime]] = {}

    def touch(self, grant_id: str, secret_id: str, key_id: str | None, at: datetime) -> bool:
        """Note a use; True when something new is waiting for ``flush``."""
        now = self._clock()
        with self._lock:
            last = self._written.get(grant_id)
            if last is not None and now - last < self._interval:
                return False
            if len(self._written) >= MAX_TRACKED:
                self._written.clear()  # forgetting only costs an early write per grant
            self._written[grant_id] = now
            self._pending[grant_id] = (secret_id, key_id, at)
            return True

    def flush(self) -> int:
        """Write everything pending in one transaction; never raises (best effort)."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with self._engine.begin() as conn:
                for grant_id, (secret_id, key_id, at) in batch.items():
                    _mark(conn, t.grants, grant_id, at)
                    _mark(conn, t.secrets, secret_id, at)
                    if key_id is not None:
                        _mark(conn, t.api_keys, key_id, at)
        except Exception as exc:  # metadata only: a failure must never surface
            log.warning(
                "last_used_at not updated for %d grants: %s", len(batch), type(exc).__name__
            )
            return 0
        return len(batch)


def _mark(conn: sa.Connection, table: sa.Table, row_id: str, at: datetime) -> None:
    # Only forwards: a late batch never moves the time back.
    col = table.c.last_used_at
    conn.execute(
        table.update()
        .where(table.c.id == row_id, sa.or_(col.is_(None), col < at))
        .values(last_used_at=at)
    )
