"""The barrier: the one door through which the server seals and opens secrets.

Envelope encryption: every secret version gets its own random 256-bit data key; the payload
is sealed under it and the data key is wrapped by the active master key. Both layers bind the
same context (app, secret, version), so neither a ciphertext nor a wrapped key opens in
another row. There is no switch that turns any of this off.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass
from typing import Final, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultgate.server.crypto import aead
from vaultgate.server.crypto.errors import DecryptionError
from vaultgate.server.crypto.keyring import Keyring

# Domain separation: the same context never means the same AAD for the two layers.
_PAYLOAD_AAD: Final = b"vaultgate/payload\x00"
_WRAP_AAD: Final = b"vaultgate/wrap\x00"
_SECRET_AAD: Final = b"vaultgate/secret-version/v1\x00"
# Payload blobs are opened only with the data key unwrapped next to them; the id is a marker.
_DATA_KEY_ID: Final = "dk"
_HKDF_SALT: Final = b"vaultgate/derive/v1"
_LABEL_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9:-]{0,63}")

# The labels the server uses today; each gets an independent key from the root master key.
API_KEY_HASH: Final = "api-key-hash"
AUDIT_CHAIN: Final = "audit-chain"
PORTAL_SESSION: Final = "portal-session"


@dataclass(frozen=True, slots=True, repr=False)
class Sealed:
    """One sealed secret version, as stored: payload, wrapped data key, the master key's id."""

    ciphertext: bytes
    wrapped_key: bytes
    master_key_id: str

    def __repr__(self) -> str:
        # Ciphertext is not secret, but bytes in logs are noise and invite copy-paste.
        return (
            f"Sealed(master_key_id={self.master_key_id!r}, "
            f"ciphertext=<{len(self.ciphertext)} bytes>, "
            f"wrapped_key=<{len(self.wrapped_key)} bytes>)"
        )


def wrapping_key_id(sealed: Sealed) -> str | None:
    """The master key a sealed version's data key is wrapped under, from the wrapped key's own
    header (unauthenticated until opened); None when the blob is malformed (opening says so)."""
    try:
        return aead.key_id_of(sealed.wrapped_key)
    except DecryptionError:
        return None


def aad_for(app_id: str, secret_id: str, version: int) -> bytes:
    """The context a secret version is bound to: label, then length-prefixed fields.

    Length prefixes make the encoding injective: ("a", "bc") and ("ab", "c") differ.
    """
    if version < 0:
        raise ValueError("a secret version is never negative")
    parts = [_SECRET_AAD]
    for field in (app_id, secret_id):
        raw = field.encode("utf-8")
        parts.append(struct.pack(">I", len(raw)) + raw)
    parts.append(struct.pack(">Q", version))
    return b"".join(parts)


class Barrier:
    """Seals and opens secrets under a keyring; derives the server's HMAC keys."""

    __slots__ = ("_derived", "keyring")

    def __init__(self, keyring: Keyring) -> None:
        self.keyring: Final = keyring
        self._derived: dict[str, bytes] = {}

    aad_for = staticmethod(aad_for)

    @property
    def active_key_id(self) -> str:
        return self.keyring.active.key_id

    def seal_secret(self, plaintext: bytes, *, aad: bytes) -> Sealed:
        """Seal under a fresh data key, wrapped by the active master key."""
        data_key = os.urandom(aead.KEY_LEN)
        ciphertext = aead.seal(data_key, plaintext, aad=_PAYLOAD_AAD + aad, key_id=_DATA_KEY_ID)
        active = self.keyring.active
        wrapped = aead.seal(active.material, data_key, aad=_WRAP_AAD + aad, key_id=active.key_id)
        return Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id=active.key_id)

    def open_secret(self, sealed: Sealed, *, aad: bytes) -> bytes:
        """Open a sealed version; raises :class:`DecryptionError` for any mismatch.

        The wrapped key's own header names the master key; ``sealed.master_key_id`` is an index
        for rotation, not trusted for decryption.
        """
        data_key = self._unwrap(sealed.wrapped_key, aad)
        return aead.open(
            lambda key_id: data_key if key_id == _DATA_KEY_ID else None,
            sealed.ciphertext,
            aad=_PAYLOAD_AAD + aad,
        )

    def rewrap(self, wrapped_key: bytes, *, aad: bytes) -> tuple[bytes, str]:
        """Move a wrapped data key to the active master key; returns (wrapped_key, key id).

        Already under the active key: returned unchanged (after checking it opens), so a
        rotation job can be re-run safely.
        """
        data_key = self._unwrap(wrapped_key, aad)
        active = self.keyring.active
        if aead.key_id_of(wrapped_key) == active.key_id:
            return wrapped_key, active.key_id
        rewrapped = aead.seal(active.material, data_key, aad=_WRAP_AAD + aad, key_id=active.key_id)
        return rewrapped, active.key_id

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for ``label`` (e.g. ``"audit-chain"``), by HKDF-SHA256.

        Derived from the keyring's *root* (first, oldest) key, not the active one, so master key
        rotation leaves API key hashes, audit HMACs and sessions valid. No extra secret to set.
        """
        if not _LABEL_PATTERN.fullmatch(label):
            raise ValueError("a derivation label is lower-case letters, digits, ':' or '-'")
        derived = self._derived.get(label)
        if derived is None:
            hkdf = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=_HKDF_SALT,
                info=b"vaultgate/" + label.encode("ascii"),
            )
            derived = self._derived[label] = hkdf.derive(self.keyring.root.material)
        return derived

    def mac(self, label: str, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the key derived for ``label``."""
        return hmac.new(self.derive_key(label), message, hashlib.sha256).digest()

    def verify_mac(self, label: str, message: bytes, tag: bytes) -> bool:
        """Constant-time check of a tag made by :meth:`mac`."""
        return hmac.compare_digest(self.mac(label, message), tag)

    def _unwrap(self, wrapped_key: bytes, aad: bytes) -> bytes:
        return aead.open(self.keyring.lookup, wrapped_key, aad=_WRAP_AAD + aad)

    def __repr__(self) -> str:
        return f"Barrier(keyring={self.keyring!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Barrier cannot be pickled")
