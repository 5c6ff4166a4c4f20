"""Sign-in rate limiting: failed attempts counted per email and per source address.

The counts live in this node's memory, so with several nodes an attacker gets each node's
allowance; that still turns a password guess per millisecond into a handful per window.
"""

from __future__ import annotations

import math
import threading
from collections import deque

MAX_PER_EMAIL = 5
MAX_PER_ADDRESS = 20
WINDOW = 15 * 60
MAX_TRACKED = 10_000


class LoginThrottle:
    def __init__(
        self,
        *,
        per_email: int = MAX_PER_EMAIL,
        per_address: int = MAX_PER_ADDRESS,
        window: float = WINDOW,
    ) -> None:
        self._limits = {"email": per_email, "ip": per_address}
        self._window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, email: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("email", email.strip().lower())]
        if address:
            keys.append(("ip", address))
        return keys

    def retry_after(self, email: str, address: str | None, now: float) -> int:
        """Seconds until another attempt is allowed; 0 when one is allowed now."""
        wait = 0.0
        with self._lock:
            for key in self._keys(email, address):
                times = self._recent(key, now)
                if len(times) >= self._limits[key[0]]:
                    wait = max(wait, times[0] + self._window - now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def failed(self, email: str, address: str | None, now: float) -> None:
        with self._lock:
            if len(self._failures) > MAX_TRACKED:
                # Under a spray of distinct emails, forget the old entries rather than grow.
                self._failures.clear()
            for key in self._keys(email, address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(("email", email.strip().lower()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self._window:
            times.popleft()
        return times
