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
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping
from itertools import chain

from vaultgate.injection.signing import SignatureError, parse_timestamp, verify_signature
from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.services import KeyService
from vaultgate.server.errors import Forbidden, Unauthenticated
from vaultgate.server.fleet.admission import REPLAYED, nonce_key

WINDOW_SECONDS = 300
MAX_NONCES = 1_000_000
# Nonces are kept by when they expire, in buckets of this many seconds: a lookup tries every
# live bucket (about window / width of them), and a nonce outlives its need by at most this much.
BUCKET_SECONDS = 30
# What is kept of a nonce: the low 60 bits of its string hash. The hash is keyed by a secret
# drawn at interpreter start, so nobody can aim two nonces at one value; two distinct nonces
# share one by chance with a probability of about n / 2**60 per request (1e-12 with a million
# remembered), and then the later one is refused, never let through: a nonce seen before always
# maps to the value it was stored under.
FOLD_BITS = 60
_FOLD = (1 << FOLD_BITS) - 1


class _Bucket:
    """The nonces expiring within one bucket's seconds, and the newest stamp among them.

    New nonces go into a set: a Python int and its slot, about 100 bytes each. Once the bucket
    is no longer the newest (it then takes nearly no new nonces), they are packed into a sorted
    array of 8 bytes each, with an index of where each range of leading bits starts, so a lookup
    bisects a handful of values (one bisection of the whole array cost twice as much).
    """

    __slots__ = ("fresh", "newest", "offsets", "packed", "shift")

    def __init__(self, stamp: int) -> None:
        self.fresh: set[int] = set()
        self.newest = stamp
        self.packed = array("q")
        self.offsets = array("I", (0, 0))  # packed[offsets[i]:offsets[i + 1]]: leading bits i
        self.shift = FOLD_BITS

    def __len__(self) -> int:
        return len(self.fresh) + len(self.packed)

    def pack(self) -> None:
        """Move the set's nonces into the sorted array (about 10 ms for 30,000 of them)."""
        if not self.fresh:
            return
        packed = array("q", sorted(chain(self.packed, self.fresh)))
        bits = (len(packed) // 8).bit_length()  # about 8 values for each leading-bits range
        shift = FOLD_BITS - bits
        self.offsets = array("I", (bisect_left(packed, i << shift) for i in range(2**bits + 1)))
        self.packed, self.shift, self.fresh = packed, shift, set()


class NonceCache:
    """Nonces a replay could still be accepted with, bounded in size.

    A request signed at ``stamp`` passes the timestamp check until ``stamp + window``, so its
    nonce is kept until then: a stamp ahead of the clock (allowed up to the window) keeps it
    longer than its arrival would. About 10 bytes are kept per nonce (the nonce string and its
    arrival in an ordered dict took 280: some 25 MiB per worker under ``make bench``).

    When the bound forces out nonces that are still replayable, a replay of their requests
    could no longer be recognised; so every request signed at or before the newest stamp forced
    out is refused from then on (``floor``). Under normal load nothing is forced out.
    """

    def __init__(self, window: int = WINDOW_SECONDS, max_entries: int = MAX_NONCES) -> None:
        self._window = window
        self._max = max_entries
        self._buckets: dict[int, _Bucket] = {}  # by expiry bucket, the earliest first
        self._count = 0
        self.floor = -1

    def __len__(self) -> int:
        return self._count

    def check_and_add(self, nonce: str, now: float, stamp: int | None = None) -> bool:
        """True when the nonce is fresh (and is now remembered), False when it was seen."""
        stamp = int(now) if stamp is None else stamp
        self._forget(now)
        folded = hash(nonce) & _FOLD
        if stamp <= self.floor or self._seen(folded):
            return False
        key = (stamp + self._window) // BUCKET_SECONDS
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._new_bucket(key, stamp)
        bucket.fresh.add(folded)
        bucket.newest = max(bucket.newest, stamp)
        self._count += 1
        return True

    def _seen(self, folded: int) -> bool:
        # A nonce seen with any stamp is refused, so every live bucket is asked (about 11);
        # inline, as this runs for every signed request.
        for bucket in self._buckets.values():
            if folded in bucket.fresh:
                return True
            offsets, packed = bucket.offsets, bucket.packed
            lead = folded >> bucket.shift
            end = offsets[lead + 1]
            at = bisect_left(packed, folded, offsets[lead], end)
            if at < end and packed[at] == folded:
                return True
        return False

    def _new_bucket(self, key: int, stamp: int) -> _Bucket:
        # The buckets before it take (nearly) no new nonces from now on: pack them.
        for earlier, older in self._buckets.items():
            if earlier < key:
                older.pack()
        bucket = self._buckets[key] = _Bucket(stamp)
        if key < max(self._buckets):  # rare: a stamp behind the newest bucket's
            self._buckets = dict(sorted(self._buckets.items()))
        return bucket

    def _forget(self, now: float) -> None:
        """Drop the buckets that nothing can be replayed from, then any over the bound."""
        while self._buckets:
            key = next(iter(self._buckets))
            # Every expiry in the bucket is below its end: at or past it, the timestamp check
            # refuses each of its requests anyway.
            replayable = now < (key + 1) * BUCKET_SECONDS
            if replayable and self._count < self._max:
                return
            bucket = self._buckets.pop(key)
            if replayable:
                self.floor = max(self.floor, bucket.newest)
            self._count -= len(bucket)


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
