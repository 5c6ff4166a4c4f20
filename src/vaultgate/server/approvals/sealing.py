"""Held requests and results go through the barrier like secrets, bound to their approval
(``crypto.blobs``: the layout OAuth values use too). The context binds app, approval and kind, so
a blob never opens in another row or as the other kind.
"""

from __future__ import annotations

from typing import Final, Literal

from vaultgate.server.crypto import Barrier
from vaultgate.server.crypto.blobs import BlobFormat

_BLOBS: Final = BlobFormat(b"vaultgate/approval/v1\x00", "approval")
Kind = Literal["request", "result"]


def seal(barrier: Barrier, plaintext: bytes, *, app_id: str, approval_id: str, kind: Kind) -> bytes:
    return _BLOBS.seal(barrier, plaintext, app_id, approval_id, kind)


def open_sealed(
    barrier: Barrier, blob: bytes, *, app_id: str, approval_id: str, kind: Kind
) -> bytes:
    """The plaintext; :class:`DecryptionError` for a blob of another row, kind or key."""
    return _BLOBS.open(barrier, blob, app_id, approval_id, kind)


def rewrap(barrier: Barrier, blob: bytes, *, app_id: str, approval_id: str, kind: Kind) -> bytes:
    """The blob with its data key wrapped under the active master key; the payload unchanged."""
    return _BLOBS.rewrap(barrier, blob, app_id, approval_id, kind)


key_id_of = _BLOBS.key_id_of
