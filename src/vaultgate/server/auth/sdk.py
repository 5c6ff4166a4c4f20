"""Authenticating an Alter-protocol request: the key, then its HMAC signature, time and nonce.

The timestamp window and the replay check are ours to choose (the official client defines
neither): 300 s either way. Replay is refused at two levels. This process's ``NonceCache``
refuses a nonce it has seen before anything else is done. The deployment-wide check is in the
use's own record: a request that releases or forwards a credential carries its nonce into the
audit batch, where a nonce already stored by any worker or node refuses it
(``fleet.admission``), at no round trip of its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from vaultgate.injection.signing import SignatureError, parse_timestamp, verify_signature
from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.services import KeyService
from vaultgate.server.errors import Forbidden, Unauthenticated
from vaultgate.server.fleet.admission import REPLAYED, nonce_key

WINDOW_SECONDS = 300
MAX_NONCES = 1_000_000


class NonceCache:
    """Nonces seen in the last window, by arrival, bounded in size.

    When the bound forces out a nonce that is still inside the window, a replay of its request
    could no longer be recognised; so every request signed at or before the newest timestamp
    forced out is refused from then on (``floor``). Under normal load nothing is forced out.
    """

    def __init__(self, window: int = WINDOW_SECONDS, max_entries: int = MAX_NONCES) -> None:
        self._window = window
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # nonce -> (now, stamp)
        self.floor = -1

    def check_and_add(self, nonce: str, now: float, stamp: int | None = None) -> bool:
        """True when the nonce is fresh (and is now remembered), False when it was seen."""
        stamp = int(now) if stamp is None else stamp
        while self._seen:
            oldest, (seen_at, seen_stamp) = next(iter(self._seen.items()))
            expired = seen_at < now - self._window
            if not expired and len(self._seen) < self._max:
                break
            if not expired:
                self.floor = max(self.floor, seen_stamp)
            self._seen.pop(oldest)
        if nonce in self._seen or stamp <= self.floor:
            return False
        self._seen[nonce] = (now, stamp)
        return True


def signed_nonce(principal: Principal, headers: Mapping[str, str]) -> str:
    """The stored form of an authenticated request's nonce (scoped to its key)."""
    return nonce_key(principal.key_id, headers.get("x-alter-nonce", ""))


class SdkAuthenticator:
    def __init__(
        self, keys: KeyService, nonces: NonceCache, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = keys
        self._nonces = nonces
        self._now = clock

    def authenticate(
        self, method: str, path_with_query: str, body: bytes, headers: Mapping[str, str]
    ) -> Principal:
        presented = headers.get("x-api-key")
        principal = self._keys.authenticate(presented)
        if principal.is_admin or principal.app_id is None:
            raise Forbidden("the SDK API takes an app key, not an admin key", code="forbidden")
        assert presented is not None
        try:
            verify_signature(presented, method, path_with_query, body, headers)
            stamp = parse_timestamp(headers)
        except SignatureError as exc:
            raise Unauthenticated(exc.message, code=exc.code) from None
        now = self._now()
        if abs(now - stamp) > WINDOW_SECONDS:
            raise Unauthenticated(
                "request timestamp outside the 300 s window (check the clock)",
                code="stale_request",
            )
        nonce = headers.get("x-alter-nonce", "")
        if not self._nonces.check_and_add(nonce, now, stamp):
            raise Unauthenticated(REPLAYED, code="replayed_request")
        return principal
