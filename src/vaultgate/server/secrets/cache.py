"""A small time-bounded cache of what the request path reads: grants and sealed versions.

Changes made on this node invalidate their entries at once; changes made by another node are
seen within ``ttl`` seconds (the price of not reading the database on every request).
Sealed blobs are cached, never plaintext: a request still opens its secret through the barrier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from vaultgate.server.crypto import Sealed

V = TypeVar("V")
MAX_ENTRIES = 50_000


class _TTLMap(Generic[V]):
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._items: dict[str, tuple[float, V]] = {}

    def get(self, key: str, load: Callable[[], V]) -> V:
        hit = self._items.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if len(self._items) >= MAX_ENTRIES:
            self._items.clear()
        self._items[key] = (now + self._ttl, value)
        return value

    def peek(self, key: str) -> V | None:
        """The cached value when it is fresh, else None (the caller loads it off the loop)."""
        hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def drop(self, predicate: Callable[[str, V], bool]) -> None:
        self._items = {k: v for k, v in self._items.items() if not predicate(k, v[1])}

    def clear(self) -> None:
        self._items.clear()


class GrantCache:
    def __init__(self, ttl: float) -> None:
        self.grants: _TTLMap[object] = _TTLMap(ttl)
        # Sealed versions never change once written (rotation adds a version), so they may live
        # longer; deletion and rotation still drop them here.
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
