"""Sign-in throttling: attempts counted per account and per source address, in the database.

The count lives in the database, so every worker and node shares it (N of them do not multiply
the allowance) and nothing an attacker sends, however many emails or addresses, can clear it.
An attempt is counted *before* its password is checked, by one atomic upsert per key: of 30
concurrent guesses against a limit of 5, exactly 5 reach a verdict. A key's window opens at its
first attempt and lasts ``window`` seconds; attempts made while over the limit still count, but
never extend the window.

Separately, ``VerifySlots`` caps the argon2 verifications this process runs at once: each costs
tens of milliseconds of CPU and 64 MiB, so an unauthenticated flood must not be able to queue
hundreds of them in front of the request path.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.storage import upsert
from vaultgate.server.storage.tables import login_throttle as table

MAX_PER_EMAIL: Final = 5
MAX_PER_ADDRESS: Final = 20
WINDOW: Final = 15 * 60
MAX_CONCURRENT_VERIFICATIONS: Final = 4
PRUNE_EVERY: Final = 64  # reservations between two sweeps of expired windows


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


class LoginThrottle:
    def __init__(
        self,
        engine: Engine,
        *,
        per_email: int = MAX_PER_EMAIL,
        per_address: int = MAX_PER_ADDRESS,
        window: float = WINDOW,
    ) -> None:
        self._engine = engine
        self._limits = {"email": per_email, "ip": per_address}
        self._window = window
        self._reservations = itertools.count(1)

    def __repr__(self) -> str:
        return f"LoginThrottle(limits={self._limits}, window={self._window})"

    def _keys(self, email: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("email", _key("email", email.strip().lower()))]
        if address:
            keys.append(("ip", _key("ip", address)))
        return keys

    def reserve(self, email: str, address: str | None, now: float) -> int:
        """Count this attempt; 0 when it may go on to the password check, else the seconds to
        wait. The email's key is always taken before the address's, so two transactions never
        wait on each other's rows in opposite orders."""
        wait = 0.0
        with self._engine.begin() as conn:
            for kind, key in self._keys(email, address):
                attempts, start = self._count(conn, key, now)
                if attempts > self._limits[kind]:
                    wait = max(wait, start + self._window - now)
            if next(self._reservations) % PRUNE_EVERY == 0:
                conn.execute(table.delete().where(table.c.window_start <= now - self._window))
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def succeeded(self, email: str, address: str | None) -> None:
        """The account's count starts over; the address gives back the attempt it spent."""
        keys = dict(self._keys(email, address))
        with self._engine.begin() as conn:
            conn.execute(table.delete().where(table.c.key == keys["email"]))
            if "ip" in keys:
                conn.execute(
                    table.update()
                    .where(table.c.key == keys["ip"], table.c.attempts > 0)
                    .values(attempts=table.c.attempts - 1)
                )

    def _count(self, conn: Connection, key: str, now: float) -> tuple[int, float]:
        """One atomic statement: start a window, or add one to the open one."""
        expired = table.c.window_start <= now - self._window
        statement = (
            upsert.insert(conn, table)
            .values(key=key, attempts=1, window_start=now)
            .on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "attempts": sa.case((expired, 1), else_=table.c.attempts + 1),
                    "window_start": sa.case((expired, now), else_=table.c.window_start),
                },
            )
            .returning(table.c.attempts, table.c.window_start)
        )
        attempts, start = conn.execute(statement).one()
        return int(attempts), float(start)


class VerifySlots:
    """At most ``size`` password verifications at once in this process; the rest are turned
    away at once (a 429) rather than queued, so a flood costs it nothing but the refusals."""

    def __init__(self, size: int = MAX_CONCURRENT_VERIFICATIONS) -> None:
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def take(self) -> Iterator[bool]:
        """True inside the block when a slot was free (and is held until the block ends)."""
        got = self._slots.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._slots.release()
