"""Master keys, the keyring that holds them, and the check that the right keys were supplied.

The keyring is ordered oldest first. The first key is the *root*: keys derived for HMACs
(API key hashes, the audit chain, portal sessions) come from it, so it must stay in the
keyring for the vault's whole life; rotation appends keys and changes only the *active* one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, NoReturn

from vaultgate.server.crypto.aead import KEY_ID_PATTERN, KEY_LEN
from vaultgate.server.crypto.errors import MasterKeyError

REDACTED: Final = "**********"
_KCV_LABEL: Final = b"vaultgate key check value v1"
KCV_LEN: Final = 16


class MasterKey:
    """A 256-bit master key and its id. The material never appears in repr, str or pickles."""

    __slots__ = ("created_at", "key_id", "material")

    def __init__(self, key_id: str, material: bytes, *, created_at: datetime | None = None) -> None:
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError("a key id is 1 to 64 characters of letters, digits, '_' or '-'")
        if len(material) != KEY_LEN:
            raise ValueError(f"master key {key_id} must be {KEY_LEN} bytes")
        self.key_id: Final = key_id
        self.material: Final = bytes(material)
        self.created_at: Final = created_at

    @classmethod
    def generate(cls, *, created_at: datetime | None = None) -> MasterKey:
        """A fresh random key with a random id of the form ``mk_<8 hex>``."""
        return cls(
            f"mk_{secrets.token_hex(4)}", secrets.token_bytes(KEY_LEN), created_at=created_at
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        same_material = hmac.compare_digest(self.material, other.material)
        return self.key_id == other.key_id and same_material

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, material={REDACTED!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a MasterKey cannot be pickled")


def kcv(key: MasterKey | bytes) -> str:
    """Key check value: proves which key is which without revealing it (16 hex chars)."""
    material = key.material if isinstance(key, MasterKey) else key
    digest = hmac.new(material, _KCV_LABEL, hashlib.sha256).hexdigest()
    return digest[:KCV_LEN]


class Keyring:
    """The master keys a vault may open with, oldest first, and the one new data is wrapped by."""

    __slots__ = ("_by_id", "_keys", "active")

    def __init__(self, keys: Sequence[MasterKey], active_id: str) -> None:
        if not keys:
            raise MasterKeyError("the keyring holds no master key")
        by_id: dict[str, MasterKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise MasterKeyError(f"master key id {key.key_id} appears twice in the keyring")
            by_id[key.key_id] = key
        if active_id not in by_id:
            raise MasterKeyError(f"the active master key {active_id} is not in the keyring")
        self._keys: tuple[MasterKey, ...] = tuple(keys)
        self._by_id = by_id
        self.active: MasterKey = by_id[active_id]

    @property
    def root(self) -> MasterKey:
        """The oldest key; derived keys come from it, so it is never removed."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[MasterKey, ...]:
        return self._keys

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self._keys)

    def get(self, key_id: str) -> MasterKey | None:
        return self._by_id.get(key_id)

    def lookup(self, key_id: str) -> bytes | None:
        """Key material by id, in the shape :func:`aead.open` wants. For the barrier only."""
        key = self._by_id.get(key_id)
        return None if key is None else key.material

    def kcvs(self) -> dict[str, str]:
        """Key id -> key check value, for the server to record and compare at start."""
        return {key.key_id: kcv(key) for key in self._keys}

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self.key_ids)!r}, active_id={self.active.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled")


def check_keyring(
    keyring: Keyring, stored: Mapping[str, str], *, root_id: str | None = None
) -> None:
    """Refuse to run with keys other than those the stored data was sealed under.

    ``stored`` is the id -> KCV map the server recorded; every recorded key must be present
    and match. Keys the keyring has beyond it are new and fine. ``root_id``, when recorded,
    must still be the keyring's first key, or every derived key (API key hashes, audit HMACs)
    would silently change.
    """
    for key_id, expected in stored.items():
        key = keyring.get(key_id)
        if key is None:
            raise MasterKeyError(
                f"master key {key_id} is missing: data in this vault is sealed under it; "
                "supply the key set or key file the vault was initialised with"
            )
        if not hmac.compare_digest(kcv(key), expected):
            raise MasterKeyError(
                f"master key {key_id} is not the key this vault recorded (its key check value "
                "differs); the key was changed or mistyped"
            )
    if root_id is not None and keyring.root.key_id != root_id:
        raise MasterKeyError(
            f"the root master key must be {root_id} (first in the key file, last in "
            f"VAULTGATE_MASTER_KEY) but is {keyring.root.key_id}; derived keys depend on it"
        )
