"""Which master keys every live node holds: one heartbeat row per node process.

Each node (each worker of ``serve --workers N``) re-reads its key set and writes its row every
``HEARTBEAT_SECONDS``: its id (``VAULTGATE_NODE_NAME``/pid), the master key ids it can unwrap
with, and when. A node not seen for ``LIVE_SECONDS`` is not live (killed, paused, cut off); one
that stops cleanly deletes its row. ``master-key rewrap`` reads these rows and refuses to move
data keys to a master key while a live node lacks it (``lacking``).

The same beat reads the fleet's active master key (``meta.active_master_key_id``, set by the
re-wrap once every live node holds the key), so every node starts sealing new versions under it
together, and no node seals under a key another node has not been given yet. Times are each
node's own clock: the bound assumes clocks agree to well within ``LIVE_SECONDS`` (NTP).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import fleet_nodes, meta

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS: Final = 1.0
LIVE_SECONDS: Final = 5.0
ACTIVE_KEY: Final = "active_master_key_id"


def node_id(name: str) -> str:
    return f"{name[:180]}/{os.getpid()}"


def beat(conn: Connection, node: str, key_ids: Sequence[str], now: float) -> None:
    values = {"key_ids": sorted(key_ids), "last_seen": now}
    updated = conn.execute(
        fleet_nodes.update().where(fleet_nodes.c.node_id == node).values(**values)
    ).rowcount
    if updated == 0:
        conn.execute(fleet_nodes.insert().values(node_id=node, **values))


def fleet_active(conn: Connection) -> str | None:
    """The master key every node seals new versions under, once all of them hold it."""
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == ACTIVE_KEY)).scalar()


def set_fleet_active(conn: Connection, key_id: str) -> None:
    updated = conn.execute(
        meta.update().where(meta.c.key == ACTIVE_KEY).values(value=key_id)
    ).rowcount
    if updated == 0:
        conn.execute(meta.insert().values(key=ACTIVE_KEY, value=key_id))


def live_nodes(conn: Connection, now: float) -> dict[str, list[str]]:
    """Node id -> the master key ids it holds, for every node seen within ``LIVE_SECONDS``."""
    rows = conn.execute(
        sa.select(fleet_nodes.c.node_id, fleet_nodes.c.key_ids).where(
            fleet_nodes.c.last_seen >= now - LIVE_SECONDS
        )
    ).all()
    return {node: list(ids) for node, ids in rows}


def lacking(engine: Engine, key_id: str, now: float) -> list[str]:
    """The live nodes that do not hold ``key_id``, sorted."""
    with reading(engine) as conn:
        nodes = live_nodes(conn, now)
    return sorted(node for node, ids in nodes.items() if key_id not in ids)


class Heartbeat:
    """The thread that keeps this node's row fresh and its key set and active key current.

    ``refresh(active)`` re-reads the key set (a key file given a new key is picked up here),
    makes ``active`` the sealing key when held, and returns the key ids held.
    """

    def __init__(
        self,
        engine: Engine,
        node: str,
        refresh: Callable[[str | None], Sequence[str]],
        clock: Callable[[], float] = time.time,
        after_beat: Callable[[], object] | None = None,
    ) -> None:
        self.node = node
        # Work for a thread that wakes every second anyway (fleet.memory's Trimmer).
        self._after_beat = after_beat
        self._engine = engine
        self._refresh = refresh
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float = HEARTBEAT_SECONDS) -> None:
        self.once()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="vaultgate-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            with self._engine.begin() as conn:
                conn.execute(fleet_nodes.delete().where(fleet_nodes.c.node_id == self.node))
        except sa.exc.SQLAlchemyError as exc:  # the row then ages out after LIVE_SECONDS
            log.warning("heartbeat row not removed: %s", type(exc).__name__)

    def once(self) -> None:
        # The key file is read between the two, so the write (SQLite's one write lock) stays short.
        with reading(self._engine) as conn:  # on SQLite: no write lock for a read
            active = fleet_active(conn)
        key_ids = self._refresh(active)
        with self._engine.begin() as conn:
            beat(conn, self.node, key_ids, self._clock())

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.once()
            except sa.exc.SQLAlchemyError as exc:
                # The database is away: this node ages out of the live set, which only makes a
                # re-wrap wait; its requests fail closed on their own meanwhile.
                log.debug("heartbeat not written: %s", type(exc).__name__)
            if self._after_beat is not None:
                self._after_beat()
