"""A limited key's request rate, counted in the database so that it holds across the fleet.

Each limited key is a token bucket of ``rpm`` requests refilled at ``rpm`` a minute, kept as one
number on its ``key_controls`` row: GCRA's "theoretical arrival time" (``rate_tat``). A request is
allowed when moving that time on by one interval (``60 / rpm`` s) leaves it at most a minute
ahead of now, and the move is one conditional ``UPDATE``: on PostgreSQL the row lock, on SQLite
the write lock, serialises every worker and node, so N of them never multiply the rate.

A derived key spends its own bucket and each limited ancestor's, in one transaction: a refusal
by any of them spends none, and deriving keys cannot multiply a parent's rate. What is counted
is every request the key's scopes and networks let through, whatever its outcome.

The statements run in a worker thread (``anyio.to_thread``): a commit waits for the disk.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.errors import RateLimited
from vaultgate.server.storage.engine import sqlite_write_turn
from vaultgate.server.storage.tables import key_controls as table

MINUTE: Final = 60.0
# Rounding: rpm intervals of 60/rpm s may add up to a hair over a minute.
_SLACK: Final = 1e-6
MAX_REMEMBERED: Final = 10_000  # full buckets remembered per process (forgetting only costs I/O)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One key's limit: the key (the request's own or an ancestor) and its requests a minute."""

    key_id: str
    rpm: int
    inherited: bool = False  # an ancestor's, not the key's own


class KeyRates:
    """Spends limited keys' buckets; one per process, remembering when a full one refills.

    A bucket's time only ever moves forward (another worker's request can only push it later),
    so a bucket found full at ``now`` stays full until the refill time computed then: requests
    before it are refused here, in memory, with no transaction. A key that floods past its rate
    costs the database one refused transaction per refill, not one per request.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._full_until: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"KeyRates(full={len(self._full_until)})"

    def refuse_known_full(self, buckets: tuple[Bucket, ...], now: float) -> None:
        """Raise ``RateLimited`` when one of ``buckets`` is known full at ``now`` (no I/O)."""
        for bucket in buckets:
            until = self._full_until.get(bucket.key_id)
            if until is not None:
                if now < until:
                    raise _refusal(bucket, until - now)
                self._full_until.pop(bucket.key_id, None)

    def spend(self, buckets: tuple[Bucket, ...], now: float | None = None) -> None:
        """Take one request from every bucket, or from none; ``RateLimited`` names the first
        full one. Blocking: call it in a worker thread. ``now`` defaults to the time once this
        process has its turn to write (on SQLite, the file lock orders every process's turn)."""
        with sqlite_write_turn(self._engine), self._engine.begin() as conn:
            now = time.time() if now is None else now
            for bucket in buckets:
                if not _take(conn, bucket, now):
                    frees_at = _frees_at(conn, bucket, now)
                    conn.rollback()
                    if len(self._full_until) >= MAX_REMEMBERED:
                        self._full_until.clear()
                    self._full_until[bucket.key_id] = frees_at
                    raise _refusal(bucket, frees_at - now)


def _take(conn: Connection, bucket: Bucket, now: float) -> bool:
    interval = MINUTE / bucket.rpm
    start = sa.case((table.c.rate_tat > now, table.c.rate_tat), else_=now)
    moved = conn.execute(
        table.update()
        .where(table.c.key_id == bucket.key_id, start + interval <= now + MINUTE + _SLACK)
        .values(rate_tat=start + interval)
        .returning(table.c.key_id)
    ).first()
    return moved is not None


def _frees_at(conn: Connection, bucket: Bucket, now: float) -> float:
    """When the bucket next has a request (epoch seconds)."""
    tat = conn.execute(sa.select(table.c.rate_tat).where(table.c.key_id == bucket.key_id)).scalar()
    if tat is None:
        return now + 1.0
    return float(tat) + MINUTE / bucket.rpm - MINUTE


def _refusal(bucket: Bucket, wait: float) -> RateLimited:
    # A bucket is never more than one interval from its next request; a worker whose clock
    # reading came just before another's commit would compute a hair more.
    wait = min(wait, MINUTE / bucket.rpm)
    if bucket.inherited:
        message = (
            f"the rate limit of the key this one was derived from ({bucket.rpm} requests per "
            "minute) is exceeded"
        )
    else:
        message = f"this key's rate limit of {bucket.rpm} requests per minute is exceeded"
    return RateLimited(
        message,
        retry_after=math.ceil(wait),
        extra={"scope": "key", "limit": bucket.rpm, "window_seconds": int(MINUTE)},
    )
