"""Held requests and results go through the barrier like secrets, bound to their approval.

One blob per value: the wrapped data key (its header names the master key) and the payload,
length-prefixed. The context binds app, approval and kind, so a blob never opens in another row
or as the other kind.
"""

from __future__ import annotations

import struct
from typing import Final, Literal

from vaultgate.server.crypto import Barrier, Sealed, wrapping_key_id

_LABEL: Final = b"vaultgate/approval/v1\x00"
_VERSION: Final = b"\x01"
Kind = Literal["request", "result"]


def _aad(app_id: str, approval_id: str, kind: Kind) -> bytes:
    parts = [_LABEL]
    for text in (app_id, approval_id, kind):
        raw = text.encode()
        parts.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(parts)


def _join(wrapped: bytes, ciphertext: bytes) -> bytes:
    return _VERSION + struct.pack(">I", len(wrapped)) + wrapped + ciphertext


def _split(blob: bytes) -> Sealed:
    if blob[:1] != _VERSION or len(blob) < 5:
        raise ValueError("not a sealed approval blob")
    (size,) = struct.unpack(">I", blob[1:5])
    wrapped, ciphertext = blob[5 : 5 + size], blob[5 + size :]
    # The wrapped key's own header names its master key; the id here is only an index.
    return Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id="")


def seal(barrier: Barrier, plaintext: bytes, *, app_id: str, approval_id: str, kind: Kind) -> bytes:
    sealed = barrier.seal_secret(plaintext, aad=_aad(app_id, approval_id, kind))
    return _join(sealed.wrapped_key, sealed.ciphertext)


def open_sealed(
    barrier: Barrier, blob: bytes, *, app_id: str, approval_id: str, kind: Kind
) -> bytes:
    """The plaintext; :class:`DecryptionError` for a blob of another row, kind or key."""
    return barrier.open_secret(_split(blob), aad=_aad(app_id, approval_id, kind))


def rewrap(barrier: Barrier, blob: bytes, *, app_id: str, approval_id: str, kind: Kind) -> bytes:
    """The blob with its data key wrapped under the active master key; the payload unchanged."""
    sealed = _split(blob)
    wrapped, _ = barrier.rewrap(sealed.wrapped_key, aad=_aad(app_id, approval_id, kind))
    return _join(wrapped, sealed.ciphertext)


def key_id_of(blob: bytes) -> str | None:
    """The master key a blob's data key is wrapped under (unauthenticated until opened); None
    when it is malformed. A head of the blob that holds the wrapped key is enough."""
    try:
        return wrapping_key_id(_split(blob))
    except ValueError:
        return None
