"""OAuth values at rest (a client secret, a PKCE verifier) go through the barrier, bound to
their row.

The blob layout is the approvals one: version byte, wrapped data key (its header names the master
key), the payload. The context binds the table, the row and the field, so a blob copied to
another row or field does not open.
"""

from __future__ import annotations

import struct
from typing import Final

from vaultgate.server.crypto import Barrier, Sealed

_LABEL: Final = b"vaultgate/oauth/v1\x00"
_VERSION: Final = b"\x01"


def _aad(*parts: str) -> bytes:
    out = [_LABEL]
    for text in parts:
        raw = text.encode()
        out.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(out)


def seal(barrier: Barrier, plaintext: bytes, *context: str) -> bytes:
    sealed = barrier.seal_secret(plaintext, aad=_aad(*context))
    size = struct.pack(">I", len(sealed.wrapped_key))
    return _VERSION + size + sealed.wrapped_key + sealed.ciphertext


def open_sealed(barrier: Barrier, blob: bytes, *context: str) -> bytes:
    """The plaintext; :class:`DecryptionError` for a blob of another row, field or key."""
    if blob[:1] != _VERSION or len(blob) < 5:
        raise ValueError("not a sealed OAuth blob")
    (size,) = struct.unpack(">I", blob[1:5])
    wrapped, ciphertext = blob[5 : 5 + size], blob[5 + size :]
    sealed = Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id="")
    return barrier.open_secret(sealed, aad=_aad(*context))
