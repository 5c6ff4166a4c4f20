"""A small time-bounded cache of what the request path reads: grants and sealed versions.

Changes made on this node invalidate their entries at once. A grant entry is also tagged with the
change count (``fleet.changes``) this process knew when it was loaded, and is trusted only while
that count is current: a change committed by any other worker or node retires it as soon as this
process sees the count move (within 0.1 s, and before any use decided on it is recorded).
Sealed blobs are cached, never plaintext: a request still opens its secret through the barrier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from vaultgate.server.crypto import Sealed
from vaultgate.server.fleet.changes import Changes

V = TypeVar("V")
MAX_ENTRIES = 50_000


class _TTLMap(Generic[V]):
    """Entries that expire after ``ttl`` seconds, or as soon as ``changes`` moves past them."""

    def __init__(self, ttl: float, changes: Changes | None = None) -> None:
        self._ttl = ttl
        self._changes = changes
        self._items: dict[str, tuple[float, int, V]] = {}

    def _seen(self) -> int:
        return self._changes.current if self._changes is not None else 0

    def _valid(self, hit: tuple[float, int, V] | None) -> bool:
        return hit is not None and hit[0] > time.monotonic() and hit[1] >= self._seen()

    def get(self, key: str, load: Callable[[], V]) -> V:
        hit = self._items.get(key)
        if hit is not None and self._valid(hit):
            return hit[2]
        seen = self._seen()  # before the read: what the read returns is at least this new
        value = load()
        if len(self._items) >= MAX_ENTRIES:
            self._items.clear()
        self._items[key] = (time.monotonic() + self._ttl, seen, value)
        return value

    def peek(self, key: str) -> V | None:
        """The cached value when it is fresh, else None (the caller loads it off the loop)."""
        hit = self._items.get(key)
        return hit[2] if hit is not None and self._valid(hit) else None

    def drop(self, predicate: Callable[[str, V], bool]) -> None:
        self._items = {k: v for k, v in self._items.items() if not predicate(k, v[2])}

    def clear(self) -> None:
        self._items.clear()


class GrantCache:
    def __init__(self, ttl: float, changes: Changes | None = None) -> None:
        self.changes = changes or Changes()
        self.grants: _TTLMap[object] = _TTLMap(ttl, self.changes)
        # Sealed versions never change once written (rotation adds a version), so they may live
        # longer and need no change count: a grant entry names the version to open.
        self._sealed: _TTLMap[Sealed] = _TTLMap(max(ttl, 60.0))

    def sealed(self, secret_id: str, version: int, load: Callable[[], Sealed]) -> Sealed:
        return self._sealed.get(f"{secret_id}:{version}", load)

    def sealed_cached(self, secret_id: str, version: int) -> Sealed | None:
        return self._sealed.peek(f"{secret_id}:{version}")

    def invalidate_secret(self, secret_id: str) -> None:
        self._sealed.drop(lambda key, _: key.startswith(secret_id + ":"))
        self.grants.clear()

    def invalidate_grants(self) -> None:
        self.grants.clear()

    def clear(self) -> None:
        self.grants.clear()
        self._sealed.clear()
