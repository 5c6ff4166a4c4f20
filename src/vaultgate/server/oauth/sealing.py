"""OAuth values at rest (a client secret, a PKCE verifier) go through the barrier, bound to
their row.

The blob layout is the approvals one: version byte, wrapped data key (its header names the master
key), the payload. The context binds the table, the row and the field, so a blob copied to
another row or field does not open.
"""

from __future__ import annotations

import struct
from typing import Final

from vaultgate.server.crypto import Barrier, Sealed, wrapping_key_id

_LABEL: Final = b"vaultgate/oauth/v1\x00"
_VERSION: Final = b"\x01"


def _aad(*parts: str) -> bytes:
    out = [_LABEL]
    for text in parts:
        raw = text.encode()
        out.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(out)


def _join(wrapped: bytes, ciphertext: bytes) -> bytes:
    return _VERSION + struct.pack(">I", len(wrapped)) + wrapped + ciphertext


def _split(blob: bytes) -> Sealed:
    if blob[:1] != _VERSION or len(blob) < 5:
        raise ValueError("not a sealed OAuth blob")
    (size,) = struct.unpack(">I", blob[1:5])
    wrapped, ciphertext = blob[5 : 5 + size], blob[5 + size :]
    return Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id="")


def seal(barrier: Barrier, plaintext: bytes, *context: str) -> bytes:
    sealed = barrier.seal_secret(plaintext, aad=_aad(*context))
    return _join(sealed.wrapped_key, sealed.ciphertext)


def open_sealed(barrier: Barrier, blob: bytes, *context: str) -> bytes:
    """The plaintext; :class:`DecryptionError` for a blob of another row, field or key."""
    return barrier.open_secret(_split(blob), aad=_aad(*context))


def rewrap(barrier: Barrier, blob: bytes, *context: str) -> bytes:
    """The blob with its data key wrapped under the active master key; the payload unchanged."""
    sealed = _split(blob)
    wrapped, _ = barrier.rewrap(sealed.wrapped_key, aad=_aad(*context))
    return _join(wrapped, sealed.ciphertext)


def key_id_of(blob: bytes) -> str | None:
    """The master key a blob's data key is wrapped under (unauthenticated until opened); None
    when it is malformed. A head of the blob that holds the wrapped key is enough."""
    try:
        return wrapping_key_id(_split(blob))
    except ValueError:
        return None
