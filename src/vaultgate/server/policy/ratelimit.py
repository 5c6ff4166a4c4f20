"""An in-memory token bucket per key, for limits that only one process needs to count.

A grant's policy limit is NOT counted here: it must hold across every worker and node, so the
request path counts it as an exact sliding window inside the transaction that records the use
(``fleet.admission``). This bucket remains for ``policy.decide.authorize``, within one
process.

A token bucket per key (a grant id): it holds at most ``requests`` tokens and refills at
``requests / per_seconds`` tokens a second, so the long-run rate never exceeds the limit and a
burst is at most ``requests``. The clock is a parameter (seconds as a float, any epoch); nothing in
here awaits, so one event loop can share a limiter without interleaving, and a lock covers callers
on other threads.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from vaultgate.server.policy.models import RateLimit

DEFAULT_MAX_KEYS = 100_000
# Idle buckets dropped per check: a small constant keeps each check O(1) while the sweep still
# keeps pace with the rate at which new keys arrive.
_SWEEP_PER_CHECK = 4


@dataclass(frozen=True, slots=True)
class RateState:
    """The limiter's answer: allowed, or refused with the whole seconds until a token is free."""

    allowed: bool
    retry_after_seconds: int = 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    capacity: float
    per_second: float

    def full_at(self) -> float:
        return self.updated + (self.capacity - self.tokens) / self.per_second


class RateLimiter:
    """Token buckets keyed by grant id, bounded to ``max_keys`` buckets (least recent go first)."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str, limit: RateLimit, now: float) -> RateState:
        """Take one token from ``key``'s bucket if there is one; say when to retry if not."""
        with self._lock:
            bucket = self._refilled(key, limit, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return RateState(allowed=True)
            wait = (1.0 - bucket.tokens) / bucket.per_second
            return RateState(allowed=False, retry_after_seconds=max(1, math.ceil(wait)))

    def _refilled(self, key: str, limit: RateLimit, now: float) -> _Bucket:
        capacity = float(limit.requests)
        per_second = limit.requests / limit.per_seconds
        bucket = self._buckets.get(key)
        if bucket is None:
            self._sweep(now)
            bucket = _Bucket(capacity, now, capacity, per_second)
            self._buckets[key] = bucket
            return bucket
        self._buckets.move_to_end(key)
        # A clock that steps backwards must not mint tokens; a changed limit applies at once.
        elapsed = max(0.0, now - bucket.updated)
        bucket.capacity, bucket.per_second = capacity, per_second
        bucket.tokens = min(capacity, bucket.tokens + elapsed * per_second)
        bucket.updated = max(now, bucket.updated)
        return bucket

    def _sweep(self, now: float) -> None:
        """Drop idle buckets (full again: forgetting one changes nothing), then cap the size."""
        for _ in range(_SWEEP_PER_CHECK):
            oldest = next(iter(self._buckets.values()), None)
            if oldest is None or oldest.full_at() > now:
                break
            self._buckets.popitem(last=False)
        while len(self._buckets) >= self._max_keys:
            self._buckets.popitem(last=False)
