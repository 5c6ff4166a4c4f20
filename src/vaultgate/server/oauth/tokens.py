"""Access tokens on the request path: a per-process cache in front of the fleet's token state.

A request whose secret has a fresh token in this process's cache pays a dictionary lookup. When
the token is due, one task per process (the others await it) asks `TokenStore`, which takes the
fleet-wide lock; so however many workers and nodes ask at once, one token request leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import anyio.to_thread

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.server.egress.guard import AddressGuard

OAUTH_TYPES: Final[frozenset[CredentialType]] = frozenset(
    {"oauth2_client_credentials", "oauth2_refresh_token"}
)
# A provider that states no lifetime gets its token refreshed after this long.
DEFAULT_LIFETIME: Final = 3600.0


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and its clock: expiry, when to refresh, when this process looks again."""

    value: str = field(repr=False)
    expires_at: float | None
    refresh_at: float
    recheck_at: float

    @classmethod
    def issued(cls, value: str, expires_in: float | None, now: float, margin: float) -> AccessToken:
        lifetime = expires_in or DEFAULT_LIFETIME
        # Refresh `margin` before expiry, but never later than half-way through a short life.
        refresh_at = now + max(lifetime - margin, lifetime / 2)
        expires_at = now + expires_in if expires_in else None
        return cls(value, expires_at, refresh_at, refresh_at)

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def expires_in(self, now: float) -> int | None:
        return None if self.expires_at is None else max(0, int(self.expires_at - now))

    def credential(self) -> Credential:
        """What the injection rules see: the access token as ``{token}``, nothing else."""
        return Credential("bearer", {"token": self.value})


@dataclass(frozen=True, slots=True)
class Holder:
    """Which secret version a token belongs to, and which grant asked (for the audit trail)."""

    app_id: str
    secret_id: str
    version: int
    grant_id: str
    provider: str | None = None


class OAuthTokens:
    def __init__(
        self,
        obtain: Callable[[Holder, Credential], AccessToken],
        guard: AddressGuard,
        now: Callable[[], float],
    ) -> None:
        self._obtain_locked = obtain
        self._guard = guard
        self._now = now
        self._cache: dict[str, tuple[int, AccessToken]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future[AccessToken]] = {}

    async def access(self, holder: Holder, credential: Credential) -> AccessToken:
        cached = self._cache.get(holder.secret_id)
        if cached is not None and cached[0] == holder.version:
            token = cached[1]
            if self._now() < token.recheck_at:
                return token
        key = (holder.secret_id, holder.version)
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._obtain(holder, credential))
            self._inflight[key] = flight
            flight.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(flight)

    async def _obtain(self, holder: Holder, credential: Credential) -> AccessToken:
        # The token endpoint is a destination like any other: no loopback or metadata address
        # unless the operator opened it (--allow-private-destinations).
        url = urlsplit(credential["token_url"])
        port = url.port or (443 if url.scheme == "https" else 80)
        await self._guard.resolve_and_vet(url.hostname or "", port)
        token = await anyio.to_thread.run_sync(self._obtain_locked, holder, credential)
        self._cache[holder.secret_id] = (holder.version, token)
        return token
