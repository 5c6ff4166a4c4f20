"""One sealed value in one column: the layout the OAuth and approval rows share.

A blob is a version byte, the wrapped data key's length and bytes (its header names the master
key), then the payload sealed under that data key. Its context is a label for the kind of value
and length-prefixed fields naming the row, so a blob copied to another row, field or kind does
not open. Sinks' webhook secrets predate this and keep their own layout (``sinks.store``).
"""

from __future__ import annotations

import struct
from typing import Final

from vaultgate.server.crypto.envelope import Barrier, Sealed, wrapping_key_id

_VERSION: Final = b"\x01"


class BlobFormat:
    """The blobs of one kind of value (``label``), bound to the fields each call names."""

    __slots__ = ("_label", "_what")

    def __init__(self, label: bytes, what: str) -> None:
        self._label = label
        self._what = what  # for the error on a malformed blob: "OAuth", "approval"

    def __repr__(self) -> str:
        return f"BlobFormat({self._label!r})"

    def seal(self, barrier: Barrier, plaintext: bytes, *context: str) -> bytes:
        sealed = barrier.seal_secret(plaintext, aad=self._aad(context))
        return _join(sealed.wrapped_key, sealed.ciphertext)

    def open(self, barrier: Barrier, blob: bytes, *context: str) -> bytes:
        """The plaintext; :class:`DecryptionError` for a blob of another row, field or key."""
        return barrier.open_secret(self._split(blob), aad=self._aad(context))

    def rewrap(self, barrier: Barrier, blob: bytes, *context: str) -> bytes:
        """The blob with its data key wrapped under the active master key; the payload as it was."""
        sealed = self._split(blob)
        wrapped, _ = barrier.rewrap(sealed.wrapped_key, aad=self._aad(context))
        return _join(wrapped, sealed.ciphertext)

    def key_id_of(self, blob: bytes) -> str | None:
        """The master key a blob's data key is wrapped under (unauthenticated until opened); None
        when it is malformed. A head of the blob that holds the wrapped key is enough."""
        try:
            return wrapping_key_id(self._split(blob))
        except ValueError:
            return None

    def _aad(self, context: tuple[str, ...]) -> bytes:
        out = [self._label]
        for text in context:
            raw = text.encode()
            out.append(struct.pack(">I", len(raw)) + raw)
        return b"".join(out)

    def _split(self, blob: bytes) -> Sealed:
        if blob[:1] != _VERSION or len(blob) < 5:
            raise ValueError(f"not a sealed {self._what} blob")
        (size,) = struct.unpack(">I", blob[1:5])
        wrapped, ciphertext = blob[5 : 5 + size], blob[5 + size :]
        # The wrapped key's own header names its master key; the id here is only an index.
        return Sealed(ciphertext=ciphertext, wrapped_key=wrapped, master_key_id="")


def _join(wrapped: bytes, ciphertext: bytes) -> bytes:
    return _VERSION + struct.pack(">I", len(wrapped)) + wrapped + ciphertext
