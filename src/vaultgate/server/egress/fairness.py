"""Fair shares of a node: how many proxied requests one grant may have in flight at once.

A rate limit bounds how often a grant is used; this bounds how much of the node it holds at one
time. Without it one app calling a slow upstream fills the connection pool and the event loop's
attention with requests that only wait, and every other app's calls queue behind them. Counted
per node and per grant id, on the event loop (no lock: nothing here awaits).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from vaultgate.server.errors import RateLimited

SETTING: Final = "VAULTGATE_MAX_INFLIGHT_PER_GRANT"


class InflightLimit:
    def __init__(self, per_grant: int) -> None:
        if per_grant < 1:
            raise ValueError("per_grant must be at least 1")
        self.per_grant = per_grant
        self._counts: dict[str, int] = {}

    def in_flight(self, grant_id: str) -> int:
        return self._counts.get(grant_id, 0)

    def enter(self, grant_id: str) -> Slot:
        """A slot for one request of ``grant_id``, or 429 ``concurrency_limit_exceeded``."""
        count = self._counts.get(grant_id, 0)
        if count >= self.per_grant:
            raise RateLimited(
                f"this grant already has {self.per_grant} requests in flight on this node, the "
                f"most allowed ({SETTING}); retry when one has finished",
                retry_after=1,
                code="concurrency_limit_exceeded",
                extra={"limit": self.per_grant},
            )
        self._counts[grant_id] = count + 1
        return Slot(self, grant_id)

    def _leave(self, grant_id: str) -> None:
        count = self._counts.get(grant_id, 0) - 1
        if count > 0:
            self._counts[grant_id] = count
        else:
            self._counts.pop(grant_id, None)


class Slot:
    """One request's place in its grant's share; `release` is idempotent."""

    __slots__ = ("_grant_id", "_limit")

    def __init__(self, limit: InflightLimit, grant_id: str) -> None:
        self._limit: InflightLimit | None = limit
        self._grant_id = grant_id

    def release(self) -> None:
        if self._limit is not None:
            limit, self._limit = self._limit, None
            limit._leave(self._grant_id)


_HELD: Final = "vaultgate.slots"


def hold(scope: MutableMapping[str, Any], slot: Slot) -> None:
    """Keep ``slot`` until the request's answer has been sent (`release_held`)."""
    scope.setdefault(_HELD, []).append(slot)


def release_held(scope: MutableMapping[str, Any]) -> None:
    for slot in scope.pop(_HELD, ()):
        slot.release()
