"""OAuth values at rest (a client secret, a PKCE verifier) go through the barrier, bound to
their row (``crypto.blobs``: the layout approvals use too). The context binds the table, the row
and the field, so a blob copied to another row or field does not open.
"""

from __future__ import annotations

from typing import Final

from vaultgate.server.crypto.blobs import BlobFormat

_BLOBS: Final = BlobFormat(b"vaultgate/oauth/v1\x00", "OAuth")

seal = _BLOBS.seal
open_sealed = _BLOBS.open
rewrap = _BLOBS.rewrap
key_id_of = _BLOBS.key_id_of
